import filecmp
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from mmfusion.datasets import MedicalSegDataset

from tests.conftest import REPO

GEN = 'tools/dataset_converters/generate_synth_lesion.py'


def _generate(out, *extra):
    return subprocess.run([sys.executable, GEN, '--out', str(out), '--num-train', '3', '--num-val', '1',
                           '--num-test', '2', '--size', '64', *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_deterministic_output_in_the_dataset_format(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    assert _generate(a).returncode == 0 and _generate(b).returncode == 0
    cmp = filecmp.dircmp(a / 'images', b / 'images')
    assert not cmp.diff_files and len(cmp.same_files) == 6
    assert filecmp.cmp(a / 'masks' / 'case_00005.png', b / 'masks' / 'case_00005.png', shallow=False)

    ds = MedicalSegDataset(data_root=str(a), ann_file='splits/test.txt', pipeline=[])
    assert [d['sample_id'] for d in ds] == ['case_00004', 'case_00005']
    for name in ('case_00000', 'case_00005'):
        img = np.array(Image.open(a / 'images' / f'{name}.png'))
        mask = np.array(Image.open(a / 'masks' / f'{name}.png'))
        assert img.shape == (64, 64, 3) and mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 255} and mask.any()

    again = _generate(a)  # same parameters: nothing to do
    assert again.returncode == 0 and 'already generated' in again.stdout
    other = _generate(a, '--seed', '1')
    assert other.returncode != 0 and '--overwrite' in other.stdout + other.stderr
    assert json.loads((a / 'meta.json').read_text())['seed'] == 0
