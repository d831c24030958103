"""The repository stands on its own: no tracked file points at documents
outside it."""
import subprocess

from tests.conftest import REPO


def test_no_file_refers_to_design_documents_outside_the_repository():
    files = subprocess.run(['git', 'ls-files'], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    offences = []
    for name in files:
        if name == 'tests/test_repository.py':
            continue
        try:
            text = open(f'{REPO}/{name}', encoding='utf-8').read()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        for word in ('DESIGN.md', 'PAPERS.md', '../shared'):
            if word in text:
                offences.append(f'{name}: {word}')
    assert not offences, offences
