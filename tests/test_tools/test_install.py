"""tools/install.sh as a user without root or sudo: the Debian packages it
cannot install are a warning, not the end of the install."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO

NOBODY = 65534
# What the script runs besides its Debian packages (no sudo, no espeak-ng, no chromium).
TOOLS = ('bash', 'cat', 'sha256sum', 'cut', 'id', 'dpkg', 'apt-get', 'dirname')


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which('setpriv') is None,
                    reason='needs root and setpriv to run the script as another user')
def test_install_without_root_or_sudo_warns_and_goes_on():
    # pytest's tmp_path sits in a root-only folder; the other user needs to read this one.
    tmp_path = Path(tempfile.mkdtemp(prefix='mmfusion-install-'))
    os.chmod(tmp_path, 0o755)
    try:
        _run_as_nobody(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_as_nobody(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for tool in TOOLS:
        path = shutil.which(tool)
        if path is None:
            pytest.skip(f'{tool} is not on this machine')
        (bin_dir / tool).symlink_to(path)
    # An up-to-date venv stamp (the script's own hash of what decides the
    # environment), so the run stops after the system-package step.
    venv = tmp_path / 'venv'
    venv.mkdir()
    want = subprocess.run('cat tools/install.sh requirements/*.txt setup.py | sha256sum',
                          shell=True, cwd=REPO, capture_output=True, text=True, check=True)
    (venv / '.mmfusion-install.sha').write_text(want.stdout.split()[0] + '\n')
    proc = subprocess.run(
        [shutil.which('setpriv'), f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups',
         'bash', 'tools/install.sh'],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env=dict(PATH=str(bin_dir), VENV=str(venv), HOME=str(tmp_path)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'WARNING: cannot apt-get install' in proc.stdout
    assert 'espeak-ng' in proc.stdout and 'chromium' in proc.stdout
    assert 'is up to date' in proc.stdout
