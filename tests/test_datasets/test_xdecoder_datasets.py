"""CocoPanopticCaptionDataset, ADE20KSemanticDataset and RefCocoDataset on
tiny fixtures in the public formats (tests/data/xdecoder_formats) and on SynthShapes."""
import os
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from mmfusion.datasets import ADE20KSemanticDataset, CocoPanopticCaptionDataset, RefCocoDataset
from mmfusion.datasets.synthshapes_meta import ALL_CLASSES, STUFF_CLASSES, THING_CLASSES

from tests.conftest import DATA

FIX = osp.join(DATA, 'xdecoder_formats')
PAN_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadPanopticAnnotations'),
                dict(type='PackFusionInputs')]
REF_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadReferringMask'),
                dict(type='PackFusionInputs')]
ADE_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='mmseg.LoadAnnotations'),
                dict(type='PackFusionInputs')]


def coco_panoptic(**kwargs):
    return CocoPanopticCaptionDataset(
        data_root=osp.join(FIX, 'coco'), ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        caption_file='annotations/captions_val2017.json', pipeline=PAN_PIPELINE, **kwargs)


def test_coco_panoptic_fields():
    ds = coco_panoptic()
    assert ds.metainfo['classes'] == ('cat', 'dog', 'sky')  # things by id, then stuff
    assert ds.metainfo['thing_classes'] == ('cat', 'dog')
    assert ds.metainfo['stuff_classes'] == ('sky',)
    info = ds.get_data_info(1)
    assert info['img_path'].endswith('val2017/000000000011.jpg')
    assert info['seg_map_path'].endswith('panoptic_val2017/000000000011.png')
    assert info['gt_caption'] == ['a cat and a dog 1.', 'animals under the sky.']
    assert [s['category'] for s in info['segments_info']] == [2, 0, 1, 0]
    assert [s['is_thing'] for s in info['segments_info']] == [False, True, True, False]  # crowd
    assert [i['bbox_label'] for i in info['instances']] == [0, 1]
    assert info['instances'][0]['bbox'] == [2, 20, 10, 28]  # xyxy
    out = ds[1]
    sample = out['data_samples']
    assert out['inputs']['img'].shape == (3, 32, 32)
    assert sample.gt_instances.labels.tolist() == [0, 1]
    masks = sample.gt_instances.masks.numpy()
    assert masks.shape == (2, 32, 32) and masks[0].sum() == 64 and masks[0][20:28, 2:10].all()
    sem = sample.gt_sem_seg.data[0].numpy()
    assert (sem[4:16] == 2).all() and (sem[20:28, 2:10] == 0).all()
    assert (sem[:4, :4] == 0).all()  # a crowd region keeps its category in the semantic map
    assert (sem[30:, :2] == 255).all()  # unlabelled -> void
    assert sample.gt_caption == info['gt_caption']
    assert sample.metainfo['segments_info'] == info['segments_info']


def test_coco_panoptic_errors(tmp_path):
    with pytest.raises(ValueError, match='horse'):
        coco_panoptic(metainfo=dict(classes=['cat', 'horse']))
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        CocoPanopticCaptionDataset(ann_file=str(tmp_path / 'nowhere.json'),
                                   data_prefix=dict(img='', seg=''))
    ds = coco_panoptic(metainfo=dict(classes=['dog', 'sky']))
    assert [s['category'] for s in ds.get_data_info(0)['segments_info']] == [1, 0]


def test_ade20k_fixture():
    ds = ADE20KSemanticDataset(data_root=osp.join(FIX, 'ADEChallengeData2016'),
                               data_prefix=dict(img_path='images/validation',
                                                seg_map_path='annotations/validation'),
                               pipeline=ADE_PIPELINE)
    assert len(ds) == 1 and len(ds.metainfo['classes']) == 150
    sem = ds[0]['data_samples'].gt_sem_seg.data[0].numpy()
    assert (sem[:10] == 2).all() and (sem[10:20, :16] == 0).all() and (sem[20:, 5:] == 149).all()
    assert (sem[10:20, 16:] == 255).all()  # 0 = other -> ignore


def test_refcoco_fixture():
    root = osp.join(FIX, 'refcoco')
    ds = RefCocoDataset(data_root=root, split_by='unc', split='train',
                        data_prefix=dict(img_path='images'), pipeline=REF_PIPELINE)
    assert [ds.get_data_info(i)['text'] for i in range(len(ds))] == ['cat on the left', 'small cat']
    assert ds[1]['inputs']['text'] == 'small cat'
    mask = ds[0]['data_samples'].gt_sem_seg.data[0].numpy()
    assert mask.sum() > 0 and mask[3:10, 3:10].all() and not mask[16:].any()
    grouped = RefCocoDataset(data_root=root, split=['val', 'testA'], per_sentence=False,
                             data_prefix=dict(img_path='images'), pipeline=REF_PIPELINE)
    assert ([grouped.get_data_info(i)['text'] for i in range(2)]
            == [['the dog'], ['triangle cat', 'the only cat']])
    info = grouped.get_data_info(1)
    assert info['img_path'].endswith('COCO_train2014_000000000002.jpg')
    assert info['category'] == 'cat'
    tri = grouped[1]['data_samples'].gt_sem_seg.data[0].numpy()
    assert tri[6, 6] == 1 and tri[14, 14] == 0  # lower-right half of the box is outside
    with pytest.raises(ValueError, match='testB'):
        RefCocoDataset(data_root=root, split='testB')
    with pytest.raises(FileNotFoundError, match=r'refs\(umd\).p'):
        RefCocoDataset(data_root=root, split_by='umd')


def test_synthshapes(synthshapes_root):
    root = synthshapes_root
    pan = CocoPanopticCaptionDataset(
        data_root=root, ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='images/', seg='annotations/panoptic_val/'),
        caption_file='annotations/captions_val.json', pipeline=PAN_PIPELINE)
    assert list(pan.metainfo['classes']) == ALL_CLASSES
    assert list(pan.metainfo['stuff_classes']) == STUFF_CLASSES
    sample = pan[0]['data_samples']
    sem_gt = np.array(Image.open(osp.join(root, 'semantic', 'val', '000024.png')))
    assert np.array_equal(sample.gt_sem_seg.data[0].numpy(), sem_gt)
    assert len(sample.gt_caption) == 3
    assert len(sample.gt_instances.labels) == len(pan.get_data_info(0)['instances']) > 0
    ade = ADE20KSemanticDataset(data_root=root, img_suffix='.png', reduce_zero_label=False,
                                metainfo=dict(classes=ALL_CLASSES),
                                data_prefix=dict(img_path='images/val',
                                                 seg_map_path='semantic/val'),
                                pipeline=ADE_PIPELINE)
    assert len(ade) == 8 and len(ade.metainfo['palette']) == len(ALL_CLASSES)
    assert np.array_equal(ade[0]['data_samples'].gt_sem_seg.data[0].numpy(), sem_gt)
    ref = RefCocoDataset(data_root=osp.join(root, 'refsynth'), split_by='synth', split='val',
                         data_prefix=dict(img_path=osp.join(root, 'images')), pipeline=REF_PIPELINE)
    out = ref[0]
    assert set(ref.metainfo['classes']) == set(THING_CLASSES)
    assert out['inputs']['text'].startswith('the ')
    assert out['data_samples'].gt_sem_seg.data.sum() > 0


def test_synthshapes_panoptic_with_referring_expressions(synthshapes_root):
    """refs_file joins each image's referred objects to its panoptic sample;
    SampleReferringExpression packs one sentence and the referred mask, which
    is one of the image's thing masks."""
    root = synthshapes_root
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadPanopticAnnotations'),
                dict(type='SampleReferringExpression', random=False),
                dict(type='PackFusionInputs')]
    pan = CocoPanopticCaptionDataset(
        data_root=root, ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='images/', seg='annotations/panoptic_val/'),
        caption_file='annotations/captions_val.json', refs_file='refsynth/refs(synth).p',
        refs_instances_file='refsynth/instances.json', refs_splits=['val'], pipeline=pipeline)
    info = pan.get_data_info(0)
    assert len(info['gt_refs']) == len(info['instances']) > 0
    ref = RefCocoDataset(data_root=osp.join(root, 'refsynth'), split_by='synth', split='val',
                         data_prefix=dict(img_path=osp.join(root, 'images')))
    first = next(r for r in map(ref.get_data_info, range(len(ref)))
                 if r['img_id'] == info['img_id'])
    assert info['gt_refs'][0]['sentences'][0] == first['text']
    out = pan[0]
    assert out['inputs']['text'] == first['text']
    ref_mask = out['data_samples'].gt_ref_mask.data[0]
    thing_masks = out['data_samples'].gt_instances.masks
    assert ref_mask.shape == thing_masks.shape[1:] and ref_mask.sum() > 0
    assert any(bool((ref_mask == m).all()) for m in thing_masks)
    train_refs_only = CocoPanopticCaptionDataset(
        data_root=root, ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='images/', seg='annotations/panoptic_val/'),
        refs_file='refsynth/refs(synth).p', refs_instances_file='refsynth/instances.json')
    assert train_refs_only.get_data_info(0)['gt_refs'] == []  # val refs stay out of training
    with pytest.raises(ValueError, match='go together'):
        CocoPanopticCaptionDataset(data_root=root, ann_file='annotations/panoptic_val.json',
                                   refs_file='refsynth/refs(synth).p')
    no_refs = CocoPanopticCaptionDataset(
        data_root=root, ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='images/', seg='annotations/panoptic_val/'), pipeline=pipeline)
    with pytest.raises(KeyError, match='refs_file'):
        no_refs[0]



def test_refs_pickle_with_code_is_refused(tmp_path):
    root = tmp_path / 'refcoco'
    shutil.copytree(osp.join(FIX, 'refcoco'), root)
    with open(root / 'refs(unc).p', 'wb') as f:
        pickle.dump([dict(ref_id=0, hook=os.system)], f, protocol=2)
    with pytest.raises(ValueError, match='refuses to load global'):
        RefCocoDataset(data_root=str(root), split_by='unc', split='train')


@pytest.mark.parametrize('family,recipe,count', [
    ('xdecoder', 'xdecoder_r18-tiny_2xb8-2300it_synthshapes.py', 10),
    ('frozenseg', 'frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes.py', 6)])
def test_tiny_config_datasets_and_evaluators(synthshapes_root, family, recipe, count):
    """The tiny X-Decoder / FrozenSeg config and its evaluation configs read
    SynthShapes as written by the generator (data_root swapped for the test
    copy) and build their evaluators."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmfusion.registry import DATASETS, METRICS

    from tests.conftest import REPO
    init_default_scope('mmfusion')
    folder = osp.join(REPO, 'configs', family)
    paths = [osp.join(folder, recipe)] + sorted(
        osp.join(folder, 'synthshapes_eval', f) for f in os.listdir(
            osp.join(folder, 'synthshapes_eval')))
    assert len(paths) == count
    for path in paths:
        cfg = Config.fromfile(path)
        loaders = [cfg.test_dataloader] + ([cfg.train_dataloader] if 'eval' not in path else [])
        for loader in loaders:
            dataset_cfg = loader.dataset
            dataset_cfg.data_root = synthshapes_root
            dataset = DATASETS.build(dataset_cfg)
            out = dataset[0]
            assert out['inputs']['img'].shape[0] == 3, path
            sample = out['data_samples']
            assert 'gt_sem_seg' in sample or 'gt_ref_mask' in sample, path
        METRICS.build(cfg.test_evaluator)
