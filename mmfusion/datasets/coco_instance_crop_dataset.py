import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS

from .coco_utils import category_names, load_coco_json


@DATASETS.register_module()
class CocoInstanceCropDataset(BaseDataset):
    """One sample per object of a COCO instances file: its box, class and name.

    Reads the standard COCO ``instances_*.json`` (``images``, ``annotations``,
    ``categories``); crowd regions and objects smaller than ``min_area`` are
    skipped. Each sample carries ``img_path``, ``bbox`` (COCO ``[x, y, w, h]``),
    ``gt_label`` (index into ``metainfo['classes']``), ``text`` (the category
    name, for region-text training and zero-shot evaluation) and a
    ``sample_id`` unique per object (used by the feature cache). Pair it with
    ``CropToBox`` in the pipeline.

    ``format='coco_panoptic'`` reads a COCO panoptic file instead: one sample
    per segment (``segments_info``), things and stuff alike, so that
    region-text pretraining also sees the background classes (a stuff
    segment's box is usually most of the image).

    The class list defaults to the file's categories in id order. Pass
    ``metainfo=dict(classes=[...])`` to fix the label space (e.g. seen +
    novel classes for open-vocabulary evaluation); objects of other
    categories are then dropped.
    """

    def __init__(self, min_area: float = 0.0, format: str = 'coco', **kwargs) -> None:
        if format not in ('coco', 'coco_panoptic'):
            raise ValueError(f"CocoInstanceCropDataset: format must be 'coco' or "
                             f"'coco_panoptic', got {format!r}")
        self.min_area = min_area
        self.format = format
        super().__init__(**kwargs)

    def _annotations(self, coco: dict):
        """Instances: the annotations; panoptic: every segment, with its
        image id."""
        if self.format == 'coco':
            return coco['annotations']
        segments = []
        for ann in coco['annotations']:
            if 'segments_info' not in ann:
                raise KeyError(f'{self.ann_file}: annotation of image {ann.get("image_id")} has '
                               'no "segments_info" (is it a COCO panoptic file?)')
            segments += [dict(seg, image_id=ann['image_id']) for seg in ann['segments_info']]
        return segments

    def load_data_list(self) -> List[dict]:
        coco = load_coco_json(self.ann_file, 'panoptic' if self.format == 'coco_panoptic'
                              else 'instances')
        cat_names = category_names(coco)
        classes = list(self._metainfo.get('classes') or cat_names.values())
        unknown = set(classes) - set(cat_names.values())
        if unknown:
            raise ValueError(f'metainfo classes {sorted(unknown)} are not categories of '
                             f'{self.ann_file}; its categories: {list(cat_names.values())}')
        self._metainfo['classes'] = tuple(classes)
        label_of = {name: i for i, name in enumerate(classes)}
        images = {img['id']: img for img in coco['images']}
        data_list = []
        for ann in self._annotations(coco):
            name = cat_names.get(ann['category_id'])
            if name is None:
                raise KeyError(f'{self.ann_file}: annotation {ann.get("id")} has category_id '
                               f'{ann["category_id"]}, which is not in "categories"')
            if ann.get('iscrowd', 0) or ann.get('area', 1) < self.min_area or name not in label_of:
                continue
            img = images.get(ann['image_id'])
            if img is None:
                raise KeyError(f'{self.ann_file}: annotation {ann.get("id")} refers to missing '
                               f'image_id {ann["image_id"]}')
            img_path = osp.join(self.data_prefix.get('img_path', ''), img['file_name'])
            data_list.append(dict(img_path=img_path, bbox=ann['bbox'], gt_label=label_of[name],
                                  text=name, sample_id=f'{img_path}#{ann["id"]}',
                                  ori_shape=(img['height'], img['width'])))
        return data_list
