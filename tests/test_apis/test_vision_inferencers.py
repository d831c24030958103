"""The image Inferencers (mmfusion.apis.vision_inferencers) on random-weight
tiny models: outputs at each input's size, masks that decode from their COCO
RLE to exactly the predicted masks, out_dir files read back, batching, folder
inputs and input errors. (GMS on trained weights: test_demo_and_test_tool.py.)"""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from PIL import Image
from pycocotools import mask as mask_utils

from mmfusion.apis import (
    CaptionInferencer,
    MattingInferencer,
    MedicalSegInferencer,
    OpenVocabSegInferencer,
    PromptableSegInferencer,
    ReferringSegInferencer,
    RetrievalInferencer,
)
from mmfusion.apis.vision_inferencers import alpha_to_uint8

from tests.conftest import REPO, tiny_gms_cfg

XDECODER = osp.join(REPO, 'configs/xdecoder/xdecoder_r18-tiny_2xb8-2300it_synthshapes.py')
FROZENSEG = osp.join(REPO, 'configs/frozenseg/frozenseg_convnext-s8-sam-tiny_1xb8-5ep_'
                     'synthshapes.py')
SAM = osp.join(REPO, 'configs/sam/sam_vit-tiny_1xb8-2600it_synthshapes.py')
SEMAT = osp.join(REPO, 'configs/semat/semat_sam-tiny_1xb8-1200it_synthmatte.py')
CLASSES_A = ['person', 'sky', 'rocket']
CLASSES_B = ['flag', 'face', 'helmet', 'wall']

pytestmark = [pytest.mark.usefixtures('one_thread'),
              pytest.mark.filterwarnings('ignore:weight files of the config not found'),
              pytest.mark.filterwarnings('ignore::DeprecationWarning:pycocotools')]


def decode(rle: dict) -> np.ndarray:
    return mask_utils.decode(dict(size=rle['size'], counts=rle['counts'].encode())).astype(bool)


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A BGR image with a few coloured blocks."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 180, np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[y:y + h // 3, x:x + w // 3] = rng.integers(0, 255, 3)
    return img


@pytest.fixture(scope='module')
def images():
    """Two same-size images (batching adds no padding) and one of another size."""
    return [photo(64, 64, 0), photo(64, 64, 1), photo(48, 80, 2)]


@pytest.fixture(scope='module')
def seg():
    torch.manual_seed(0)
    return OpenVocabSegInferencer(XDECODER, weights=False, show_progress=False)


def test_skimage_astronaut_overlay(seg):
    """The web demo's call: an RGB overlay at the photo's size, class names in the JSON."""
    from skimage import data
    out = seg('skimage:astronaut', texts=['person', 'sky', 'rocket'], task='semantic')
    vis, pred = out['visualization'][0], out['predictions'][0]
    photo_rgb = data.astronaut()
    assert vis.shape == photo_rgb.shape and vis.dtype == np.uint8
    # every pixel carries a class, so the overlay recolours (nearly) the whole picture
    assert (np.abs(vis.astype(int) - photo_rgb).sum(-1) > 0).mean() > 0.9
    assert pred['classes'] == CLASSES_A and (pred['height'], pred['width']) == (512, 512)
    json.dumps(pred)


@pytest.mark.parametrize('task', ['semantic', 'instance', 'panoptic'])
def test_open_vocab_masks_decode_to_the_prediction(seg, images, task):
    samples = seg(images, task=task, texts=[CLASSES_A, CLASSES_B, CLASSES_A],
                  return_datasamples=True, return_vis=False)['predictions']
    dicts = seg(images, task=task, texts=[CLASSES_A, CLASSES_B, CLASSES_A])['predictions']
    for img, sample, pred, classes in zip(images, samples, dicts,
                                          (CLASSES_A, CLASSES_B, CLASSES_A)):
        shape = img.shape[:2]
        assert pred['task'] == task and pred['classes'] == classes
        assert (pred['height'], pred['width']) == shape
        if task == 'semantic':
            seg_map = sample.pred_sem_seg.data[0].numpy()
            union = np.zeros(shape, int)
            for s in pred['segments']:
                np.testing.assert_array_equal(decode(s['mask']), seg_map == s['label'])
                assert s['class'] == classes[s['label']] and s['area'] == (seg_map == s[
                    'label']).sum()
                union += decode(s['mask'])
            assert (union == 1).all()  # the segments tile the image
        elif task == 'panoptic':
            pan = sample.pred_panoptic_seg.sem_seg[0].numpy()
            ids = [s['id'] for s in pred['segments']]
            assert sorted(ids) == sorted(i for i in np.unique(pan).tolist()
                                         if i % INSTANCE_OFFSET < len(classes))
            for s in pred['segments']:
                np.testing.assert_array_equal(decode(s['mask']), pan == s['id'])
                assert s['label'] == s['id'] % INSTANCE_OFFSET
        else:
            inst = sample.pred_instances
            assert len(pred['instances']) == len(inst) > 0
            for k, i in enumerate(pred['instances']):
                np.testing.assert_array_equal(decode(i['mask']), inst.masks[k].numpy())
                assert i['label'] == int(inst.labels[k]) and i['class'] == classes[i['label']]
                assert i['score'] == pytest.approx(float(inst.scores[k]))
                np.testing.assert_allclose(i['bbox'], inst.bboxes[k].numpy())


def test_open_vocab_batch_of_two_equals_one_by_one(seg, images):
    kwargs = dict(task='instance', texts=[CLASSES_A, CLASSES_B])
    batched = seg(images[:2], batch_size=2, **kwargs)
    single = [seg([img], texts=[c], task='instance')
              for img, c in zip(images[:2], (CLASSES_A, CLASSES_B))]
    for b, (pred, vis) in enumerate(zip(batched['predictions'], batched['visualization'])):
        one = single[b]['predictions'][0]
        assert [i['mask'] for i in pred['instances']] == [i['mask'] for i in one['instances']]
        assert [i['label'] for i in pred['instances']] == [i['label'] for i in one['instances']]
        np.testing.assert_allclose([i['score'] for i in pred['instances']],
                                   [i['score'] for i in one['instances']], atol=1e-5)
        assert np.abs(vis.astype(int) - single[b]['visualization'][0]).max() <= 1


def test_folder_input_writes_json_and_png(seg, images, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    for name, img in zip(('b_img', 'a_img'), images[1:]):
        cv2.imwrite(str(folder / f'{name}.png'), img)
    (folder / 'notes.txt').write_text('not an image')
    out = seg(str(folder), texts=CLASSES_A, task='semantic', out_dir=str(tmp_path / 'out'))
    assert len(out['predictions']) == 2
    for name, img, pred in zip(('a_img', 'b_img'), images[:0:-1], out['predictions']):
        with open(tmp_path / 'out' / 'preds' / f'{name}.json') as f:
            assert json.load(f) == pred
        drawn = np.array(Image.open(tmp_path / 'out' / 'vis' / f'{name}.png'))
        assert drawn.shape == img.shape
        assert (pred['height'], pred['width']) == img.shape[:2]


def test_default_classes_and_frozenseg(seg, images):
    pred = seg(images[0], task='semantic')['predictions'][0]
    assert pred['classes'] == list(seg.model.classes)
    torch.manual_seed(0)
    frozen = OpenVocabSegInferencer(FROZENSEG, weights=False, show_progress=False)
    out = frozen(images[2], texts=CLASSES_B, task='semantic')
    pred, vis = out['predictions'][0], out['visualization'][0]
    assert vis.shape == images[2].shape and (pred['height'], pred['width']) == (48, 80)
    assert sum(s['area'] for s in pred['segments']) == 48 * 80
    with pytest.raises(TypeError, match='runs XDecoder models, got FrozenSeg'):
        ReferringSegInferencer(frozen.model)  # FrozenSeg has no language branches


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(texts=[]), ValueError, 'is empty'),
    (dict(texts=['person', ' ']), ValueError, 'non-empty strings'),
    (dict(texts=[['a'], ['b']]), ValueError, '2 lists for 1 images'),
    (dict(task='depth'), ValueError, "unknown task 'depth'"),
    (dict(task='referring'), ValueError, "unknown task 'referring'"),
])
def test_open_vocab_errors(seg, images, kwargs, error, message):
    with pytest.raises(error, match=message):
        seg(images[0], **kwargs)


def test_input_errors(seg, tmp_path):
    with pytest.raises(FileNotFoundError, match='input file not found: .*nope.png'):
        seg(str(tmp_path / 'nope.png'), texts=CLASSES_A)
    with pytest.raises(FileNotFoundError, match='holds no'):
        seg(str(tmp_path), texts=CLASSES_A)
    with pytest.raises(TypeError, match='runs SAM models, got XDecoder'):
        PromptableSegInferencer(seg.model)
    with pytest.raises(TypeError, match='runs SEMat models'):
        MattingInferencer(seg.model)
    with pytest.raises(FileNotFoundError, match='config file not found'):
        OpenVocabSegInferencer('configs/xdecoder/no_such_config.py')


def test_referring_caption_retrieval(seg, images, tmp_path):
    referring = ReferringSegInferencer(seg.model, show_progress=False)
    sentences = ['the red block', 'the grey background']
    samples = referring(images[1:], text=sentences, return_datasamples=True)['predictions']
    out = referring(images[1:], text=sentences, out_dir=str(tmp_path))
    for img, sample, pred, sentence in zip(images[1:], samples, out['predictions'], sentences):
        assert pred['text'] == sentence and (pred['height'], pred['width']) == img.shape[:2]
        np.testing.assert_array_equal(decode(pred['mask']),
                                      sample.pred_sem_seg.data[0].numpy().astype(bool))
    assert np.array(Image.open(tmp_path / 'vis' / '00001.png')).shape == images[2].shape
    with pytest.raises(ValueError, match='2 sentences for 1 images'):
        referring(images[0], text=sentences)
    with pytest.raises(ValueError, match='sentence for image 0 is empty'):
        referring(images[0], text=' ')

    caption = CaptionInferencer(seg.model, show_progress=False)
    out = caption(images[:1])
    assert isinstance(out['predictions'][0]['caption'], str)
    assert out['visualization'][0].shape == images[0].shape

    retrieval = RetrievalInferencer(seg.model, show_progress=False)
    texts = ['a red square', 'a blue star', 'a green circle']
    batched = retrieval(images[:2], texts=texts, batch_size=2)['predictions']
    single = [retrieval(img, texts=texts)['predictions'][0] for img in images[:2]]
    for pred, one in zip(batched, single):
        assert sum(pred['scores']) == pytest.approx(1.0, abs=1e-5)
        assert sorted(pred['ranking']) == [0, 1, 2]
        ranked = [pred['scores'][k] for k in pred['ranking']]
        assert ranked == sorted(ranked, reverse=True) and pred['best'] == texts[pred['ranking'][0]]
        np.testing.assert_allclose(pred['scores'], one['scores'], atol=1e-5)
    with pytest.raises(ValueError, match='candidate sentences'):
        retrieval(images[0])


@pytest.fixture(scope='module')
def sam():
    torch.manual_seed(0)
    return PromptableSegInferencer(SAM, weights=False, show_progress=False)


def test_sam_prompts_masks_and_batching(sam, images, tmp_path):
    boxes = [[5, 5, 40, 40], [20, 10, 60, 50]]
    samples = sam(images[:2], boxes=boxes, return_datasamples=True)['predictions']
    out = sam(images[:2], boxes=boxes, batch_size=2, out_dir=str(tmp_path))
    for sample, pred in zip(samples, out['predictions']):
        assert pred['mode'] == 'prompt' and len(pred['masks']) == 2
        assert pred['prompts']['boxes'] == boxes
        for k, m in enumerate(pred['masks']):
            np.testing.assert_array_equal(decode(m['mask']),
                                          sample.pred_instances.masks[k].numpy())
            assert m['score'] == pytest.approx(float(sample.pred_instances.scores[k]), abs=1e-5)
    with open(tmp_path / 'preds' / '00001.json') as f:
        assert json.load(f) == out['predictions'][1]
    drawn = np.array(Image.open(tmp_path / 'vis' / '00000.png'))
    assert drawn.shape == (64, 64, 3) and (drawn[5, 5] == 255).all()  # the box outline

    # per-image prompts: points with labels on one image, a box on the other
    out = sam(images[1:], points=[[[30, 30], [5, 5]], None], labels=[[1, 0], None],
              boxes=[None, [[10, 10, 70, 40]]])
    first, second = out['predictions']
    assert len(first['masks']) == 1 and first['prompts']['labels'] == [1, 0]
    assert len(second['masks']) == 1 and (second['height'], second['width']) == (48, 80)


def test_sam_automatic_masks(sam, images):
    out = sam(images[0], auto=True, auto_cfg=dict(points_per_side=4, pred_iou_thresh=0.0,
                                                  stability_score_thresh=0.0))
    pred = out['predictions'][0]
    assert pred['mode'] == 'auto' and pred['prompts'] is None
    for m in pred['masks']:
        assert decode(m['mask']).shape == (64, 64) and decode(m['mask']).sum() == m['area']
    assert sam.model.test_cfg['mode'] == 'prompt'  # the call's mode does not stick


@pytest.mark.parametrize('kwargs, message', [
    (dict(), 'no prompt'),
    (dict(boxes=[5, 5, 70, 20]), r'outside the 64x64 image'),
    (dict(points=[[5, 5]], labels=[2]), 'must be 1 .*or 0'),
    (dict(boxes=[5, 5, 4, 20]), 'x1 < x2'),
    (dict(auto=True, boxes=[1, 1, 5, 5]), 'takes no boxes'),
    (dict(boxes=[1, 2, 3]), '4 numbers per item'),
])
def test_sam_prompt_errors(sam, images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sam(images[0], **kwargs)


@pytest.fixture(scope='module')
def matting():
    pytest.importorskip('peft')
    torch.manual_seed(0)
    return MattingInferencer(SEMAT, weights=False, show_progress=False)


def test_matting_alpha_composite_and_files(matting, images, tmp_path):
    boxes = [[8, 8, 40, 50], [10, 5, 60, 45]]
    out = matting(images[1:], box=boxes, sam_mask=True, background=(0, 255, 0),
                  out_dir=str(tmp_path), return_datasamples=True)
    for name, img, sample, comp in zip(('00000', '00001'), images[1:], out['predictions'],
                                       out['visualization']):
        alpha = sample.pred_alpha.data[0].numpy()
        assert alpha.shape == img.shape[:2] and comp.shape == img.shape
        expected = alpha[..., None] * img[..., ::-1] + (1 - alpha[..., None]) * [0, 255, 0]
        assert np.abs(comp.astype(float) - expected).max() <= 1
        written = np.array(Image.open(tmp_path / 'alpha' / f'{name}.png'))
        np.testing.assert_array_equal(written, alpha_to_uint8(alpha))
        sam_png = np.array(Image.open(tmp_path / 'sam_mask' / f'{name}.png'))
        np.testing.assert_array_equal(sam_png > 0, sample.pred_sam_mask.data[0].numpy())
        with open(tmp_path / 'preds' / f'{name}.json') as f:
            pred = json.load(f)
        assert pred['alpha_png'] == osp.join('alpha', f'{name}.png')
        np.testing.assert_array_equal(decode(pred['sam_mask']), sam_png > 0)
        x1, y1, x2, y2 = sample.metainfo['alpha_box']
        assert pred['alpha_mean_inside_box'] == pytest.approx(
            alpha[int(y1):int(y2), int(x1):int(x2)].mean(), abs=1e-6)

    # batch of two == one by one; default background: a checkerboard
    batched = matting(images[1:], box=boxes, batch_size=2)['predictions']
    single = [matting(img, box=b)['predictions'][0] for img, b in zip(images[1:], boxes)]
    for b, s in zip(batched, single):
        assert b['alpha_mean_inside_box'] == pytest.approx(s['alpha_mean_inside_box'],
                                                           abs=1e-5)
    with pytest.raises(ValueError, match='input 0: box .* outside the 64x64 image'):
        matting(images[0], box=[0, 0, 65, 10])
    with pytest.raises(ValueError, match='needs box='):
        matting(images[0])
    with pytest.raises(ValueError, match=r'one such box per image \(2\)'):
        matting(images[:2], box=[[0, 0, 5, 5]] * 3)
    with pytest.raises(FileNotFoundError, match='background not found'):
        matting(images[0], box=[0, 0, 10, 10], background=str(tmp_path / 'nope.png'))


def test_medical_mask_overlay_and_batching(images, tmp_path):
    torch.manual_seed(0)
    gms = MedicalSegInferencer(tiny_gms_cfg(str(tmp_path)), weights=False, show_progress=False)
    samples = gms(images, return_datasamples=True, return_vis=False)['predictions']
    out = gms(images, alpha=1.0, batch_size=2)
    for img, sample, pred, vis in zip(images, samples, out['predictions'],
                                      out['visualization']):
        mask = sample.pred_sem_seg.data[0].numpy().astype(bool)
        np.testing.assert_array_equal(decode(pred['mask']), mask)
        assert (pred['height'], pred['width']) == img.shape[:2] and vis.shape == img.shape
        assert pred['foreground'] == pytest.approx(mask.mean())
        # alpha=1: masked pixels take the class colour, the rest stay the photo
        np.testing.assert_array_equal(vis[~mask], img[..., ::-1][~mask])
