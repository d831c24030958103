import json
import os.path as osp
from typing import List, Optional

from mmengine.dataset import BaseDataset
from mmengine.fileio import list_dir_or_file

from mmfusion.registry import DATASETS

MATTING_KEYS = ('merged', 'alpha', 'trimap', 'fg', 'bg')


@DATASETS.register_module()
class MattingDataset(BaseDataset):
    """Alpha matting in the Composition-1k layouts.

    Two ways to list the samples:

    - ``ann_file``: a JSON list of records with ``merged_path`` and
      ``alpha_path`` (and optionally ``trimap_path``, ``fg_path``,
      ``bg_path``), paths relative to ``data_root`` -- mmagic's
      Composition-1k annotation format, and what
      ``tools/dataset_converters/generate_synthmatte.py`` writes;
    - no ``ann_file``: folders named by ``data_prefix`` (``img_path``: the
      images, ``alpha_path``, optionally ``trimap_path``/``fg_path``/
      ``bg_path``) whose files share a stem, e.g. AIM-500 / AM-2K / P3M
      (``original``/``mask``/``trimap``).

    Each data info holds ``img_path`` (the merged image), ``alpha_path``
    and, when present, ``trimap_path``, ``fg_path`` and ``bg_path``; the
    other keys of a JSON record are kept.
    """

    METAINFO = dict(classes=('foreground', ))

    def __init__(self, img_suffix: str = '.png', alpha_suffix: str = '.png',
                 trimap_suffix: str = '.png', data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        self.img_suffix = img_suffix
        self.alpha_suffix = alpha_suffix
        self.trimap_suffix = trimap_suffix
        super().__init__(data_prefix=data_prefix or dict(img_path=''), **kwargs)

    def _from_json(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'matting annotation file not found: {self.ann_file}')
        with open(self.ann_file) as f:
            records = json.load(f)
        if not isinstance(records, list) or not records:
            raise ValueError(f'{self.ann_file}: expected a non-empty JSON list of records')
        data_list = []
        for i, rec in enumerate(records):
            missing = [k for k in ('merged_path', 'alpha_path') if k not in rec]
            if missing:
                raise KeyError(f'{self.ann_file}: record {i} lacks {missing} (has {sorted(rec)})')
            info = {k: v for k, v in rec.items() if not k.endswith('_path')}
            info['img_path'] = osp.join(self.data_root, rec['merged_path'])
            for key in MATTING_KEYS[1:]:
                if rec.get(f'{key}_path'):
                    info[f'{key}_path'] = osp.join(self.data_root, rec[f'{key}_path'])
            data_list.append(info)
        return data_list

    def _from_folders(self) -> List[dict]:
        prefix = self.data_prefix
        if 'alpha_path' not in prefix:
            raise KeyError('MattingDataset without ann_file needs data_prefix alpha_path (the '
                           'alpha folder) next to img_path')
        img_dir = prefix['img_path']
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'image folder not found: {img_dir}')
        stems = sorted(name[:-len(self.img_suffix)]
                       for name in list_dir_or_file(img_dir, list_dir=False,
                                                    suffix=self.img_suffix))
        if not stems:
            raise ValueError(f'no *{self.img_suffix} images in {img_dir}')
        data_list = []
        for stem in stems:
            info = dict(img_path=osp.join(img_dir, stem + self.img_suffix),
                        alpha_path=osp.join(prefix['alpha_path'], stem + self.alpha_suffix))
            if prefix.get('trimap_path'):
                info['trimap_path'] = osp.join(prefix['trimap_path'], stem + self.trimap_suffix)
            for key in ('fg', 'bg'):
                if prefix.get(f'{key}_path'):
                    info[f'{key}_path'] = osp.join(prefix[f'{key}_path'], stem + self.img_suffix)
            data_list.append(info)
        return data_list

    def load_data_list(self) -> List[dict]:
        return self._from_json() if self.ann_file else self._from_folders()
