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

    The class list defaults to the file's categories in id order. Pass
    ``metainfo=dict(classes=[...])`` to fix the label space (e.g. seen +
    novel classes for open-vocabulary evaluation); objects of other
    categories are then dropped.
    """

    def __init__(self, min_area: float = 0.0, **kwargs) -> None:
        self.min_area = min_area
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        coco = load_coco_json(self.ann_file, 'instances')
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
        for ann in coco['annotations']:
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
