import json
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

from mmdet.datasets import CocoPanopticDataset

from mmfusion.registry import DATASETS

from .coco_utils import load_coco_json
from .refcoco_dataset import load_refs


@DATASETS.register_module()
class CocoPanopticCaptionDataset(CocoPanopticDataset):
    """COCO panoptic segmentation with optional COCO captions, one sample per image.

    Reads ``panoptic_*.json`` (``images``, ``annotations`` with
    ``file_name`` + ``segments_info``, ``categories`` with ``isthing``) and
    the PNG folder given as ``data_prefix['seg']``; ``caption_file`` is a
    COCO ``captions_*.json`` (its ``annotations`` hold ``image_id`` and
    ``caption``). Parsing reuses mmdet's :class:`CocoPanopticDataset`.

    Each sample holds ``img_path``, ``img_id``, ``seg_map_path`` (the PNG
    named by the annotation's ``file_name``), ``height``/``width``,
    ``segments_info`` (``id``, ``category`` = label, ``is_thing``),
    ``instances`` (non-crowd things: ``bbox`` xyxy, ``bbox_label``,
    ``ignore_flag``) and ``gt_caption`` (list of str, empty without a
    caption file). With ``refs_file`` (a RefCOCO ``refs(*).p``) and
    ``refs_instances_file`` (its COCO instances json, whose image ids are the
    panoptic file's), ``gt_refs`` lists the image's referred objects
    (``sentences``, ``segmentation``, ``ref_id``, ``category``) of the refs
    splits ``refs_splits`` (default ``('train',)``), for joint segmentation +
    grounding training (see
    :class:`~mmfusion.datasets.transforms.SampleReferringExpression`). On
    COCO, RefCOCO's val/test images come from train2014, inside train2017:
    remove them from the training panoptic file, as X-Decoder does. Load
    masks and semantic labels with
    :class:`~mmfusion.datasets.transforms.LoadPanopticAnnotations`.

    Classes default to the file's categories, things then stuff (each in id
    order, as mmdet); ``metainfo`` gets ``classes``, ``thing_classes`` and
    ``stuff_classes``. Passing ``metainfo=dict(classes=...)`` reorders or
    restricts the label space (segments of other categories become void).
    """

    METAINFO = dict(classes=None, thing_classes=None, stuff_classes=None)

    def __init__(self, *args, caption_file: Optional[str] = None,
                 refs_file: Optional[str] = None, refs_instances_file: Optional[str] = None,
                 refs_splits: Sequence[str] = ('train', ), **kwargs) -> None:
        self.caption_file = caption_file
        if (refs_file is None) != (refs_instances_file is None):
            raise ValueError('refs_file and refs_instances_file go together (a RefCOCO '
                             'refs(*).p and its COCO instances json)')
        self.refs_file = refs_file
        self.refs_instances_file = refs_instances_file
        self.refs_splits = (refs_splits, ) if isinstance(refs_splits, str) else tuple(refs_splits)
        super().__init__(*args, **kwargs)

    def _join_prefix(self) -> None:
        super()._join_prefix()
        for attr in ('caption_file', 'refs_file', 'refs_instances_file'):
            path = getattr(self, attr)
            if path and self.data_root and not osp.isabs(path):
                setattr(self, attr, osp.join(self.data_root, path))

    def load_data_list(self) -> List[dict]:
        raw = load_coco_json(self.ann_file, 'panoptic')
        cats = sorted(raw['categories'], key=lambda c: c['id'])
        for c in cats:
            if 'isthing' not in c:
                raise KeyError(f'{self.ann_file}: category {c.get("name")} has no "isthing"')
        things = [c['name'] for c in cats if c['isthing']]
        stuff = [c['name'] for c in cats if not c['isthing']]
        classes = list(self._metainfo.get('classes') or things + stuff)
        unknown = set(classes) - set(things + stuff)
        if unknown:
            raise ValueError(f'metainfo classes {sorted(unknown)} are not categories of '
                             f'{self.ann_file}; its categories: {things + stuff}')
        self._metainfo.update(classes=tuple(classes),
                              thing_classes=tuple(c for c in classes if c in things),
                              stuff_classes=tuple(c for c in classes if c in stuff))
        label_of = {n: i for i, n in enumerate(classes)}
        self.cat_ids = [c['id'] for c in cats if c['name'] in label_of]
        self.cat2label = {c['id']: label_of[c['name']] for c in cats if c['name'] in label_of}
        self._cat_by_id = {c['id']: c for c in cats}
        captions = self._load_captions()
        refs = defaultdict(list)
        if self.refs_file:
            for ref in load_refs(self.refs_file, self.refs_instances_file)[0]:
                if ref['split'] not in self.refs_splits:
                    continue
                refs[ref['image']['id']].append(dict(
                    sentences=ref['sentences'], segmentation=ref['segmentation'],
                    ref_id=ref['ref_id'], category=ref['category']))
        images = {img['id']: img for img in raw['images']}
        data_list = []
        for ann in raw['annotations']:
            img = images.get(ann['image_id'])
            if img is None:
                raise KeyError(f'{self.ann_file}: panoptic annotation {ann.get("file_name")} '
                               f'refers to missing image_id {ann["image_id"]}')
            if 'segments_info' not in ann or 'file_name' not in ann:
                raise KeyError(f'{self.ann_file}: annotation of image {ann["image_id"]} lacks '
                               '"segments_info" or "file_name"')
            segments = []
            for seg in ann['segments_info']:
                if seg['category_id'] not in self._cat_by_id:
                    raise KeyError(f'{self.ann_file}: segment {seg["id"]} of image '
                                   f'{ann["image_id"]} has unknown category_id '
                                   f'{seg["category_id"]}')
                if seg['category_id'] in self.cat2label:
                    segments.append(dict(seg, image_id=ann['image_id']))
            info = self.parse_data_info(dict(
                raw_img_info=dict(img, img_id=img['id'], segm_file=ann['file_name']),
                raw_ann_info=segments))
            info['gt_caption'] = captions.get(img['id'], [])
            if self.refs_file:
                info['gt_refs'] = refs.get(img['id'], [])
            data_list.append(info)
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> dict:
        # mmdet looks categories up through ``self.coco``; answer from the file.
        self.coco = _CatLookup(self._cat_by_id)
        try:
            info = super().parse_data_info(raw_data_info)
        finally:
            del self.coco
        seg_prefix = self.data_prefix.get('seg')
        segm_file = raw_data_info['raw_img_info']['segm_file']
        info['seg_map_path'] = osp.join(seg_prefix, segm_file) if seg_prefix else None
        info['segm_file'] = segm_file
        info['ori_shape'] = (info['height'], info['width'])
        return info

    def _load_captions(self) -> Dict[int, List[str]]:
        if not self.caption_file:
            return {}
        if not osp.isfile(self.caption_file):
            raise FileNotFoundError(f'COCO captions file not found: {self.caption_file}')
        with open(self.caption_file) as f:
            raw = json.load(f)
        if 'annotations' not in raw:
            raise KeyError(f'{self.caption_file} is not a COCO captions file: no "annotations"')
        captions = defaultdict(list)
        for ann in raw['annotations']:
            if 'caption' not in ann or 'image_id' not in ann:
                raise KeyError(f'{self.caption_file}: annotation {ann.get("id")} lacks '
                               '"caption" or "image_id"')
            captions[ann['image_id']].append(ann['caption'])
        return dict(captions)


class _CatLookup:
    """The one ``COCO.load_cats`` call mmdet's ``parse_data_info`` makes."""

    def __init__(self, cats: Dict[int, dict]) -> None:
        self.cats = cats

    def load_cats(self, ids: int) -> List[dict]:
        return [self.cats[ids]]
