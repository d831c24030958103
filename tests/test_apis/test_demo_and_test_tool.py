"""End-to-end: a checkpoint trained here goes through tools/test.py and the image demo."""
import json
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
from mmengine.runner import Runner
from PIL import Image

from mmfusion.apis import MedicalSegInferencer, inference_model, init_model

from tests.conftest import DATA, REPO, tiny_gms_cfg

IMAGE = osp.join(DATA, 'medical_seg', 'images', 'case_000.png')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp('e2e')
    cfg = tiny_gms_cfg(str(work / 'work'), max_iters=2)
    Runner.from_cfg(cfg).train()
    cfg_path = str(work / 'cfg.py')
    cfg.dump(cfg_path)
    return cfg_path, str(work / 'work' / 'iter_2.pth'), work


def test_test_tool_reports_metrics_and_writes_drawings_and_predictions(trained):
    cfg_path, ckpt, work = trained
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', cfg_path, ckpt, '--show-dir', str(work / 'show'),
         '--out', str(work / 'preds.pkl'), '--work-dir', str(work / 'test')],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {'dice', 'iou', 'hd95'} <= set(metrics) and 0 <= metrics['dice'] <= 1
    assert sorted(p.name for p in (work / 'show').iterdir()) == ['case_000.png', 'case_001.png']
    with open(work / 'preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 2 and preds[0]['pred_sem_seg']['data'].shape == (1, 48, 48)


def test_image_demo_writes_overlay_matching_inference(trained):
    cfg_path, ckpt, work = trained
    out_file = work / 'demo.png'
    proc = subprocess.run(
        [sys.executable, 'demo/image_demo.py', cfg_path, ckpt, IMAGE, '--out-file', str(out_file),
         '--alpha', '1.0'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    overlay = np.array(Image.open(out_file))
    original = np.array(Image.open(IMAGE).convert('RGB'))
    assert overlay.shape == original.shape

    result = inference_model(init_model(cfg_path, ckpt), IMAGE)
    mask = result.pred_sem_seg.data[0].numpy().astype(bool)
    # alpha=1: predicted pixels take the lesion colour, the rest are untouched.
    assert (overlay[~mask] == original[~mask]).all()
    if mask.any():
        assert (overlay[mask] == np.array([255, 64, 64])).all()


def test_medical_inferencer_on_trained_weights(trained):
    """MedicalSegInferencer on the checkpoint trained above: the same masks as
    ``inference_model``, as RLE in preds/NAME.json next to vis/NAME.png."""
    from pycocotools import mask as mask_utils
    cfg_path, ckpt, work = trained
    images = [IMAGE, osp.join(DATA, 'medical_seg', 'images', 'case_001.png')]
    inferencer = MedicalSegInferencer(cfg_path, ckpt, show_progress=False)
    out = inferencer(images, batch_size=2, out_dir=str(work / 'infer'))
    model = init_model(cfg_path, ckpt)
    for path, pred in zip(images, out['predictions']):
        name = osp.splitext(osp.basename(path))[0]
        expected = inference_model(model, path).pred_sem_seg.data[0].numpy().astype(bool)
        rle = dict(pred['mask'], counts=pred['mask']['counts'].encode())
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), expected)
        with open(work / 'infer' / 'preds' / f'{name}.json') as f:
            assert json.load(f) == pred
        drawn = np.array(Image.open(work / 'infer' / 'vis' / f'{name}.png'))
        assert drawn.shape == np.array(Image.open(path).convert('RGB')).shape
