import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS

from .coco_utils import category_names, load_coco_json
from .medical_seg_dataset import MedicalSegDataset

FORMATS = ('coco', 'coco_panoptic', 'mask_folder')


@DATASETS.register_module()
class PromptableSegDataset(BaseDataset):
    """Images with per-object masks, for promptable segmentation (SAM).

    One sample per image; :class:`LoadPromptableAnnotations` turns its
    objects into masks and :class:`GeneratePrompts` draws the prompts.

    Args:
        format: where the objects come from:

            - ``'coco'``: a COCO instances JSON (``ann_file``); polygon and
              RLE ``segmentation`` both work; crowd regions and objects below
              ``min_area`` are skipped, images without objects too (unless
              ``test_mode``).
            - ``'coco_panoptic'``: a COCO panoptic JSON plus its PNGs
              (``data_prefix['seg_map_path']``); every segment, thing or
              stuff, is an object, as SAM's class-agnostic masks are.
            - ``'mask_folder'``: the :class:`MedicalSegDataset` layout
              (``images/``, ``masks/``, ``splits/*.txt``); each connected
              component of a mask is an object.
        min_area: smallest object (pixels) kept.
        img_suffix, mask_suffix: for ``'mask_folder'``.

    Each sample carries ``img_path``, ``sample_id`` and ``objects``: the COCO
    annotations (``segmentation``, ``category_id``, ``id``), the panoptic
    ``segments_info`` with ``seg_map_path``, or only ``seg_map_path``.
    ``metainfo['classes']`` holds the COCO category names (``('object',)``
    for mask folders); ``label`` of each object indexes it.
    """

    def __init__(self, format: str = 'coco', min_area: float = 0.0, img_suffix: str = '.png',
                 mask_suffix: str = '.png', **kwargs) -> None:
        if format not in FORMATS:
            raise ValueError(f'PromptableSegDataset: format must be one of {FORMATS}, '
                             f'got {format!r}')
        self.format = format
        self.min_area = min_area
        self.img_suffix = img_suffix
        self.mask_suffix = mask_suffix
        if format == 'mask_folder':
            kwargs.setdefault('data_prefix', dict(img_path='images', seg_map_path='masks'))
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        if self.format == 'mask_folder':
            folder = MedicalSegDataset(ann_file=self.ann_file, data_prefix=self.data_prefix,
                                       img_suffix=self.img_suffix, mask_suffix=self.mask_suffix,
                                       lazy_init=True)
            self._metainfo['classes'] = ('object', )
            return [dict(info, objects=None) for info in folder.load_data_list()]
        kind = 'panoptic' if self.format == 'coco_panoptic' else 'instances'
        coco = load_coco_json(self.ann_file, kind)
        names = category_names(coco)
        label_of = {cat_id: i for i, cat_id in enumerate(names)}
        self._metainfo['classes'] = tuple(names.values())
        per_image = {img['id']: [] for img in coco['images']}
        for ann in coco['annotations']:
            if ann['image_id'] not in per_image:
                raise KeyError(f'{self.ann_file}: annotation {ann.get("id")} refers to missing '
                               f'image_id {ann["image_id"]}')
            per_image[ann['image_id']].append(ann)
        data_list = []
        for img in coco['images']:
            img_path = osp.join(self.data_prefix.get('img_path', ''), img['file_name'])
            if kind == 'instances':
                objects = per_image[img['id']]
                seg_map_path = None
            else:
                pan = per_image[img['id']]
                objects = pan[0]['segments_info'] if pan else []
                seg_map_path = osp.join(self.data_prefix.get('seg_map_path', ''),
                                        pan[0]['file_name']) if pan else None
            kept = []
            for obj in objects:
                if obj['category_id'] not in label_of:
                    raise KeyError(f'{self.ann_file}: object {obj.get("id")} of image '
                                   f'{img["file_name"]} has category_id {obj["category_id"]}, '
                                   'which is not in "categories"')
                if obj.get('iscrowd', 0) or obj.get('area', 1) < self.min_area:
                    continue
                kept.append(dict(obj, label=label_of[obj['category_id']]))
            if not kept and not self.test_mode:
                continue
            info = dict(img_path=img_path, sample_id=img_path, objects=kept,
                        height=img['height'], width=img['width'])
            if seg_map_path is not None:
                info['seg_map_path'] = seg_map_path
            data_list.append(info)
        return data_list
