import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmfusion.datasets import MattingDataset
from mmfusion.evaluation.metrics import MattingMetric

from tools.dataset_converters.generate_synthmatte import main as generate

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadMattingAnnotations'),
            dict(type='PackFusionInputs')]


@pytest.fixture(scope='module')
def synthmatte(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthmatte'))
    generate(['--out', root, '--num-train', '3', '--num-val', '0', '--num-test', '2',
              '--size', '48'])
    return root


def test_json_layout_loads_alpha_trimap_and_box(synthmatte):
    ds = MattingDataset(data_root=synthmatte, ann_file='test.json', pipeline=PIPELINE)
    assert len(ds) == 2
    with open(osp.join(synthmatte, 'test.json')) as f:
        record = json.load(f)[0]
    sample = ds[0]['data_samples']
    alpha8 = np.asarray(Image.open(osp.join(synthmatte, record['alpha_path'])))
    np.testing.assert_allclose(sample.gt_alpha.data[0].numpy(), alpha8 / 255.0, atol=1e-6)
    trimap = np.asarray(Image.open(osp.join(synthmatte, record['trimap_path'])))
    assert (sample.gt_trimap.data[0].numpy() == trimap).all()
    ys, xs = np.nonzero(alpha8)
    assert sample.alpha_box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert ds.get_data_info(0)['kind'] == record['kind']  # extra record keys are kept
    # the packed sample is what MattingMetric reads: a perfect prediction scores 0
    metric = MattingMetric(region='unknown')
    metric.process({}, [dict(pred_alpha=sample.gt_alpha.to_dict(), **sample.to_dict())])
    assert all(v < 1e-6 for v in metric.evaluate(1).values())


def test_folder_layout(synthmatte):
    ds = MattingDataset(data_root=osp.join(synthmatte, 'train'),
                        data_prefix=dict(img_path='merged', alpha_path='alpha',
                                         trimap_path='trimap'), pipeline=PIPELINE)
    assert len(ds) == 3 and 'gt_trimap' in ds[2]['data_samples']


def _write(path, array):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def test_bad_input_names_the_file(tmp_path):
    root = str(tmp_path)
    _write(osp.join(root, 'merged', 'a.png'), np.zeros((16, 20, 3), np.uint8))
    alpha = np.zeros((16, 20), np.uint8)
    alpha[4:8, 4:8] = 255
    _write(osp.join(root, 'alpha', 'a.png'), alpha[:, :18])
    prefix = dict(img_path='merged', alpha_path='alpha', trimap_path='trimap')
    ds = MattingDataset(data_root=root, data_prefix=prefix, pipeline=PIPELINE)
    with pytest.raises(ValueError, match=r'alpha .*a\.png is 18x16 .* image .*is 20x16'):
        ds[0]
    _write(osp.join(root, 'alpha', 'a.png'), (alpha.astype(np.uint16) * 4))  # 16-bit, max 1020
    with pytest.raises(ValueError, match=r'a\.png: values must be in \[0, 255\]'):
        ds[0]
    _write(osp.join(root, 'alpha', 'a.png'), np.zeros((16, 20), np.uint8))
    with pytest.raises(ValueError, match='empty'):
        ds[0]
    _write(osp.join(root, 'alpha', 'a.png'), alpha)
    trimap = np.full((16, 20), 128, np.uint8)
    trimap[0, 0] = 7
    _write(osp.join(root, 'trimap', 'a.png'), trimap)
    with pytest.raises(ValueError, match=r'trimap .*a\.png: values must be 0 / 128 / 255'):
        ds[0]
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump([dict(merged_path='merged/a.png')], f)
    with pytest.raises(KeyError, match=r"record 0 lacks \['alpha_path'\]"):
        MattingDataset(data_root=root, ann_file='ann.json', pipeline=PIPELINE)
