import json
import os
import os.path as osp
from typing import List, Optional

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS


@DATASETS.register_module()
class RefMatteDataset(BaseDataset):
    """RefMatte-RW100 (Li et al., *Referring Image Matting*, CVPR 2023): 100
    real photos, several foreground instances each, every instance with its
    own alpha matte and referring expressions.

    Layout: ``image/<name>.jpg``, one alpha per instance in
    ``mask/<name>_<k>.png`` and ``refmatte_rw100_label.json``, a dict from a
    mask's stem (``<name>_<k>``) to its record: ``image_name`` (the image's
    stem) and ``expressions`` (list of str), with any further keys kept.

    One sample per mask file (the instance), as SEMat evaluates it. With
    ``ann_file`` the image is the record's ``image_name``; without, it is the
    mask's stem minus its ``_<k>`` suffix (the official SEMat test reader's
    rule). Each data info holds ``img_path``, ``alpha_path`` and the record's
    other keys (``expressions``...), ready for ``LoadImageFromFile`` +
    ``LoadMattingAnnotations``.

    Raises:
        FileNotFoundError: a missing ``ann_file`` or mask folder, or a mask
            whose image is missing (naming both).
        KeyError: a mask with no record in ``ann_file``, or a record without
            ``image_name``.
    """

    METAINFO = dict(classes=('foreground', ))

    def __init__(self, img_suffix: str = '.jpg', alpha_suffix: str = '.png',
                 data_prefix: Optional[dict] = None, **kwargs) -> None:
        self.img_suffix = img_suffix
        self.alpha_suffix = alpha_suffix
        super().__init__(data_prefix=data_prefix or dict(img_path='image', alpha_path='mask'),
                         **kwargs)

    def _labels(self) -> Optional[dict]:
        if not self.ann_file:
            return None
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'RefMatte label file not found: {self.ann_file}')
        with open(self.ann_file) as f:
            labels = json.load(f)
        if not isinstance(labels, dict):
            raise ValueError(f'{self.ann_file}: expected a JSON object from mask name to record, '
                             f'got {type(labels).__name__}')
        return labels

    def load_data_list(self) -> List[dict]:
        mask_dir = self.data_prefix['alpha_path']
        if not osp.isdir(mask_dir):
            raise FileNotFoundError(f'RefMatte mask folder not found: {mask_dir}')
        stems = sorted(n[:-len(self.alpha_suffix)] for n in os.listdir(mask_dir)
                       if n.endswith(self.alpha_suffix))
        if not stems:
            raise ValueError(f'no *{self.alpha_suffix} masks in {mask_dir}')
        labels = self._labels()
        data_list = []
        for stem in stems:
            alpha_path = osp.join(mask_dir, stem + self.alpha_suffix)
            if labels is None:
                record, image = {}, stem.rsplit('_', 1)[0]
            else:
                if stem not in labels:
                    raise KeyError(f'{self.ann_file} has no record for mask {alpha_path}')
                record = dict(labels[stem])
                if 'image_name' not in record:
                    raise KeyError(f'{self.ann_file}: record {stem!r} has no image_name, it has '
                                   f'{sorted(record)}')
                image = record['image_name']
            if not osp.splitext(image)[1]:
                image += self.img_suffix
            img_path = osp.join(self.data_prefix['img_path'], image)
            if not osp.isfile(img_path):
                raise FileNotFoundError(f'mask {alpha_path}: its image {img_path} is missing')
            record.update(img_path=img_path, alpha_path=alpha_path)
            data_list.append(record)
        return data_list
