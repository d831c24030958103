"""XDecoderInferencer and the X-Decoder image demo on the tiny config (random
weights: no checkpoint is loaded), on scikit-image's astronaut photo."""
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine.config import Config
from skimage import data

from mmfusion.apis import XDecoderInferencer, inference_model
from mmfusion.structures import FusionDataSample

from tests.conftest import REPO

TINY = osp.join(REPO, 'configs', 'xdecoder', 'xdecoder_r18-tiny_2xb8-2300it_synthshapes.py')
CLASSES_A = ['person', 'sky', 'rocket']
CLASSES_B = ['flag', 'face', 'helmet', 'wall']


def tiny_cfg() -> Config:
    cfg = Config.fromfile(TINY)
    # The tiny CLIP is trained by another config: random towers here.
    cfg.model.text_encoder.checkpoint = None
    return cfg


@pytest.fixture(scope='module')
def inferencer():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield XDecoderInferencer(tiny_cfg())
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def astronaut() -> np.ndarray:
    """The astronaut photo as a 96x96 BGR array."""
    return cv2.resize(np.ascontiguousarray(data.astronaut()[..., ::-1]), (96, 96),
                      interpolation=cv2.INTER_AREA)


@pytest.fixture(scope='module')
def two_images(astronaut):
    """Two same-size images (so batching adds no padding)."""
    return [astronaut, np.ascontiguousarray(astronaut[:, ::-1])]


@pytest.mark.parametrize('task', ['semantic', 'instance', 'panoptic'])
def test_per_image_class_lists_in_one_call(inferencer, astronaut, task):
    # Different sizes in one batch: predictions still come back at each size.
    other = cv2.resize(astronaut, (112, 80))
    samples = inferencer([astronaut, other], task=task, texts=[CLASSES_A, CLASSES_B])
    assert len(samples) == 2
    for sample, classes, shape in zip(samples, (CLASSES_A, CLASSES_B), ((96, 96), (80, 112))):
        assert isinstance(sample, FusionDataSample)
        assert sample.metainfo['classes'] == classes
        if task == 'semantic':
            seg = sample.pred_sem_seg.data
            assert seg.shape == (1, *shape) and seg.dtype == torch.long
            assert 0 <= seg.min() and seg.max() < len(classes)
            assert sample.pred_sem_seg.seg_logits.shape == (len(classes), *shape)
        elif task == 'panoptic':
            pan = sample.pred_panoptic_seg.sem_seg
            assert pan.shape == (1, *shape)
            assert (pan % INSTANCE_OFFSET).max() <= len(classes)  # == len(classes): void
        else:
            inst = sample.pred_instances
            n = len(inst)
            assert inst.masks.shape == (n, *shape) and inst.masks.dtype == torch.bool
            assert inst.bboxes.shape == (n, 4)
            assert ((0 <= inst.labels) & (inst.labels < len(classes))).all()
            assert ((0 <= inst.scores) & (inst.scores <= 1)).all()


@pytest.mark.parametrize('task', ['semantic', 'instance'])
def test_batched_class_lists_equal_one_by_one(inferencer, two_images, task):
    batched = inferencer(two_images, task=task, texts=[CLASSES_A, CLASSES_B], batch_size=2)
    single = [inferencer(img, task=task, texts=classes)
              for img, classes in zip(two_images, (CLASSES_A, CLASSES_B))]
    for b, s in zip(batched, single):
        if task == 'semantic':
            assert torch.allclose(b.pred_sem_seg.seg_logits, s.pred_sem_seg.seg_logits,
                                  atol=1e-5)
            assert torch.equal(b.pred_sem_seg.data, s.pred_sem_seg.data)
        else:
            assert torch.equal(b.pred_instances.labels, s.pred_instances.labels)
            assert torch.equal(b.pred_instances.masks, s.pred_instances.masks)
            assert torch.allclose(b.pred_instances.scores, s.pred_instances.scores, atol=1e-5)


def test_shared_class_list_and_model_default_classes(inferencer, two_images):
    shared = inferencer(two_images, task='semantic', texts=CLASSES_A)
    assert [s.metainfo['classes'] for s in shared] == [CLASSES_A, CLASSES_A]
    default = inferencer(two_images[0], task='semantic')  # a single image: a single sample
    assert default.metainfo['classes'] == inferencer.model.classes
    # Stuff names the model knows stay stuff; names it does not know are things.
    assert 'plain background' not in default.metainfo['thing_classes']
    assert shared[0].metainfo['thing_classes'] == CLASSES_A


@pytest.mark.parametrize('kwargs, message', [
    (dict(texts=[]), 'is empty'),
    (dict(texts=[['person'], []]), 'image 1 is empty'),
    (dict(texts=['person', ' ']), 'non-empty strings'),
    (dict(texts=[['a'], ['b'], ['c']]), '3 lists for 2 images'),
    (dict(texts='person,sky'), 'list of class names'),
    (dict(texts=['person', ['sky']]), 'mix of strings and lists'),
    (dict(task='depth'), "unknown task 'depth'"),
    (dict(task='referring'), 'one sentence'),
    (dict(task='referring', texts=''), 'sentence for image 0 is empty'),
    (dict(task='referring', texts=['a man', 'a flag', 'a rocket']), '3 sentences for 2 images'),
    (dict(task='retrieval'), 'candidate sentences'),
    (dict(task='retrieval', texts=[['an astronaut'], []]), 'image 1 is empty'),
    (dict(task='caption', texts=['a photo']), 'takes no texts'),
])
def test_invalid_inputs_raise_value_error(inferencer, two_images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        inferencer(two_images, **kwargs)


def test_visualize_writes_overlays(inferencer, astronaut, tmp_path):
    sample = inferencer(astronaut, task='semantic', texts=CLASSES_A)
    out = tmp_path / 'semantic.png'
    drawn = inferencer.visualize(astronaut, sample, 'semantic', str(out))
    assert cv2.imread(str(out)).shape == (96, 96, 3) and drawn.shape == (96, 96, 3)
    assert not np.array_equal(drawn, astronaut[..., ::-1])

    # Language tasks end to end (random weights: shapes and types only).
    referring = inferencer(astronaut, task='referring', texts='the red circle')
    assert referring.pred_sem_seg.data.shape == (1, 96, 96)
    assert set(referring.pred_sem_seg.data.unique().tolist()) <= {0, 1}
    caption = inferencer(astronaut, task='caption')
    assert isinstance(caption.pred_caption, str)
    retrieval = inferencer(astronaut, task='retrieval', texts=['a red circle', 'a blue star'])
    torch.testing.assert_close(retrieval.pred_retrieval_scores.sum(), torch.tensor(1.0))
    for task, s in (('referring', referring), ('caption', caption), ('retrieval', retrieval)):
        out = tmp_path / f'{task}.png'
        inferencer.visualize(astronaut, s, task, str(out))
        assert cv2.imread(str(out)).shape == (96, 96, 3)
    with pytest.raises(ValueError, match='no pred_caption'):
        inferencer.visualize(astronaut, sample, 'caption')


def test_inference_model_skips_panoptic_annotation_loader(inferencer, astronaut):
    # The tiny config's test pipeline loads panoptic annotations; a bare image has none.
    result = inference_model(inferencer.model, astronaut)
    assert result.pred_sem_seg.data.shape == (1, 96, 96)


def test_image_demo_on_skimage_astronaut(tmp_path, capsys, one_thread):
    spec = importlib.util.spec_from_file_location('image_demo',
                                                  osp.join(REPO, 'demo', 'image_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out_file = tmp_path / 'demo.png'
    demo.main([TINY, 'none', 'skimage:astronaut', '--task', 'semantic',
               '--texts', 'person, sky,rocket', '--out-file', str(out_file),
               '--cfg-options', 'model.text_encoder.checkpoint=None'])
    printed = capsys.readouterr().out
    assert 'semantic:' in printed and f'wrote {out_file}' in printed
    assert cv2.imread(str(out_file)).shape == data.astronaut().shape  # 512x512x3
    with pytest.raises(SystemExit):  # an unknown skimage image is a usage error
        demo.main([TINY, 'none', 'skimage:no_such_image'])
