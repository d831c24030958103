import json
import os.path as osp
import pickle

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from mmfusion.datasets.synthshapes_meta import ALL_CLASSES, HELD_OUT, THING_CLASSES

from tools.dataset_converters.generate_synthshapes import main


def _load(root, name):
    with open(osp.join(root, 'annotations', name)) as f:
        return json.load(f)


def test_deterministic(synthshapes_root, tmp_path):
    main(['--out', str(tmp_path), '--num-train', '3', '--num-val', '1', '--num-val-novel', '1',
          '--img-size', '64'])
    for name in ('images/train/000002.png', 'annotations/panoptic_train/000000.png'):
        assert (np.array(Image.open(osp.join(tmp_path, name)))
                == np.array(Image.open(osp.join(synthshapes_root, name)))).all()
    # A sample does not depend on the split sizes: train image 2 is the same.
    assert (_load(tmp_path, 'instances_train.json')['annotations'][:3]
            == _load(synthshapes_root, 'instances_train.json')['annotations'][:3])


def test_formats_agree(synthshapes_root):
    """Instance RLEs, panoptic PNGs and semantic PNGs describe the same objects."""
    for split in ('train', 'val', 'val_novel'):
        coco = COCO(osp.join(synthshapes_root, 'annotations', f'instances_{split}.json'))
        panoptic = _load(synthshapes_root, f'panoptic_{split}.json')
        cat_names = {c['id']: c['name'] for c in panoptic['categories']}
        for pan_ann in panoptic['annotations']:
            rgb = np.array(Image.open(osp.join(synthshapes_root, 'annotations', f'panoptic_{split}',
                                               pan_ann['file_name']))).astype(np.int64)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            semantic = np.array(Image.open(osp.join(synthshapes_root, 'semantic', split,
                                                    pan_ann['file_name'])))
            assert set(np.unique(ids)) == {s['id'] for s in pan_ann['segments_info']}
            assert (semantic != 255).all()  # every pixel is an object or background
            instances = coco.loadAnns(coco.getAnnIds(imgIds=pan_ann['image_id']))
            things = [s for s in pan_ann['segments_info'] if s['id'] < 1000]
            assert len(things) == len(instances)
            for seg in pan_ann['segments_info']:
                mask = ids == seg['id']
                assert mask.sum() == seg['area']
                assert (semantic[mask] == ALL_CLASSES.index(cat_names[seg['category_id']])).all()
                match = [a for a in instances if a['category_id'] == seg['category_id']
                         and (coco.annToMask(a).astype(bool) == mask).all()]
                assert len(match) == (1 if seg['id'] < 1000 else 0)


def test_held_out_split(synthshapes_root):
    def names(split):
        data = _load(synthshapes_root, f'instances_{split}.json')
        cats = {c['id']: c['name'] for c in data['categories']}
        return data, [cats[a['category_id']] for a in data['annotations']]

    assert [c['name'] for c in _load(synthshapes_root, 'instances_train.json')['categories']] \
        == THING_CLASSES
    for split in ('train', 'val'):
        assert not set(names(split)[1]) & set(HELD_OUT)
    data, novel_names = names('val_novel')
    per_image = {}
    for ann, name in zip(data['annotations'], novel_names):
        per_image.setdefault(ann['image_id'], []).append(name)
    assert len(per_image) == len(data['images'])
    assert all(set(v) & set(HELD_OUT) for v in per_image.values())


def test_captions_and_refs(synthshapes_root):
    captions = _load(synthshapes_root, 'captions_train.json')
    assert len(captions['annotations']) == 3 * len(captions['images'])
    with open(osp.join(synthshapes_root, 'refsynth', 'refs(synth).p'), 'rb') as f:
        refs = pickle.load(f)
    instances = COCO(osp.join(synthshapes_root, 'refsynth', 'instances.json'))
    assert {r['ann_id'] for r in refs} == set(instances.anns)
    by_image = {}
    for ref in refs:
        assert {'ref_id', 'ann_id', 'image_id', 'split', 'sentences', 'sent_ids',
                'category_id'} <= set(ref)
        assert ref['category_id'] == instances.anns[ref['ann_id']]['category_id']
        by_image.setdefault(ref['image_id'], []).append(ref)
    # Referring expressions are unambiguous: no sentence names two objects of one image.
    for image_refs in by_image.values():
        per_ref = [{s['sent'] for s in r['sentences']} for r in image_refs]
        for i, sents in enumerate(per_ref):
            assert not any(sents & other for j, other in enumerate(per_ref) if j != i), per_ref
        for ref in image_refs:
            name = THING_CLASSES[ref['category_id'] - 1]
            assert all(name in s['sent'] for s in ref['sentences'])


def test_dataset_config_class_lists_match_the_generator():
    """Configs cannot import python lists: the written-out class lists of the
    SynthShapes dataset config must stay the generator's."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(osp.dirname(__file__), '..', '..', 'configs', '_base_',
                                   'datasets', 'synthshapes_panoptic.py'))
    assert cfg.classes == ALL_CLASSES and cfg.thing_classes == THING_CLASSES
    assert cfg.held_out_classes == HELD_OUT
    assert cfg.val_evaluator.class_groups.seen == [c for c in ALL_CLASSES if c not in HELD_OUT]
