import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS

PANEL_NAMES = ('img', 'trimap', 'alpha')


@DATASETS.register_module()
class COCOMattingDataset(BaseDataset):
    """COCO-Matting (Xia et al., *Towards Natural Image Matting in the Wild via
    Real-Scenario Prior*): 38,251 instance alpha mattes on COCO images.

    Every matte is one PNG of equally wide panels concatenated along the
    width, named left to right by ``panels``. The released archive
    (``COCO-Matting_trimap_alpha``) keeps only ``trimap | alpha`` (the
    default); the image is the COCO ``train2017`` / ``unlabeled2017`` photo the
    matte was drawn on. The authors' training files also carry the image
    (and coarse masks) in front: ``('img', 'mask', 'trimap', 'alpha')`` for
    their 4-panel files, ``('img', 'm1', 'm2', 'trimap', 'alpha')`` for the
    5-panel accessory files and ``('img', 'alpha', 'trimap')`` for the
    3-panel ones (official ``data/coconut_dataset.py``, ``SplitConcatImage``:
    image first, then trimap and alpha last, except with three panels).
    Names other than ``img``, ``trimap`` and ``alpha`` are skipped.

    The samples are listed by ``ann_file``, the JSON list of records the
    official reader takes (each names its panel PNG under ``panel_key``,
    ``'save_path'``), or, without ``ann_file``, by every ``*.png`` in the
    panel folder. A panel path is looked up under ``data_prefix['panel_path']``
    as written, then by its file name alone. The image is, in this order: the
    ``'img'`` panel; the record's ``img_key`` (relative to
    ``data_prefix['img_path']``) when that is set; else the COCO photo whose
    id starts the panel's file name (``000000000999_baseball bat_00.png`` is
    drawn on ``000000000999.jpg``), searched in ``coco_dirs`` under
    ``data_prefix['img_path']``.

    Each data info holds ``panel_path``, ``panels`` and ``img_path`` (the COCO
    photo, or the panel file when it holds the image) and the record's other
    keys; :class:`~mmfusion.datasets.transforms.LoadMattingPanels` cuts the
    panels (after ``LoadImageFromFile`` when the image is a separate photo).

    Args:
        panels: panel names, left to right; one ``'trimap'`` and one
            ``'alpha'``, at most one ``'img'``.
        panel_key: the record key naming the panel PNG.
        img_key: the record key naming the image, if the records have one.
        coco_dirs: folders under ``data_prefix['img_path']`` searched for the
            COCO photo by id.
        img_suffix: the COCO photos' suffix.
        data_prefix: ``img_path`` (the folder holding ``coco_dirs``) and
            ``panel_path`` (the folder of panel PNGs).

    Raises:
        FileNotFoundError: for a missing ``ann_file`` or panel folder, a
            record whose panel PNG or image is missing (naming both).
        KeyError / ValueError: for records without ``panel_key``, or a JSON
            that is not a non-empty list.
    """

    METAINFO = dict(classes=('foreground', ))

    def __init__(self, panels: Sequence[str] = ('trimap', 'alpha'), panel_key: str = 'save_path',
                 img_key: Optional[str] = None,
                 coco_dirs: Sequence[str] = ('train2017', 'unlabeled2017'),
                 img_suffix: str = '.jpg', data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        panels = tuple(panels)
        if (panels.count('trimap'), panels.count('alpha')) != (1, 1) or panels.count('img') > 1:
            raise ValueError(f'COCOMattingDataset: panels must name one trimap, one alpha and at '
                             f'most one img panel, got {list(panels)}')
        self.panels = panels
        self.panel_key = panel_key
        self.img_key = img_key
        self.coco_dirs = tuple(coco_dirs)
        self.img_suffix = img_suffix
        self._coco_index: Optional[Dict[str, str]] = None
        prefix = dict(img_path='', panel_path='COCO-Matting_trimap_alpha')
        prefix.update(data_prefix or {})
        super().__init__(data_prefix=prefix, **kwargs)

    def _records(self) -> List[dict]:
        if not self.ann_file:
            folder = self.data_prefix['panel_path']
            if not osp.isdir(folder):
                raise FileNotFoundError(f'COCO-Matting panel folder not found: {folder}')
            names = sorted(n for n in os.listdir(folder) if n.lower().endswith('.png'))
            if not names:
                raise ValueError(f'no *.png panel files in {folder}')
            return [{self.panel_key: n} for n in names]
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'COCO-Matting annotation file not found: {self.ann_file}')
        with open(self.ann_file) as f:
            records = json.load(f)
        if not isinstance(records, list) or not records:
            raise ValueError(f'{self.ann_file}: expected a non-empty JSON list of records, got '
                             f'{type(records).__name__}')
        out = []
        for i, rec in enumerate(records):
            if isinstance(rec, str):
                rec = {self.panel_key: rec}
            if not isinstance(rec, dict) or self.panel_key not in rec:
                keys = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
                raise KeyError(f'{self.ann_file}: record {i} has no {self.panel_key!r} (the panel '
                               f'PNG; set panel_key), it has {keys}')
            out.append(rec)
        return out

    def _panel_file(self, rel: str, where: str) -> str:
        folder = self.data_prefix['panel_path']
        for path in (osp.join(folder, rel), osp.join(folder, osp.basename(rel))):
            if osp.isfile(path):
                return path
        raise FileNotFoundError(f'{where} points to a missing panel file '
                                f'{osp.join(folder, rel)}')

    def _coco_image(self, panel_file: str, where: str) -> str:
        if self._coco_index is None:
            root = self.data_prefix['img_path']
            dirs = [osp.join(root, d) for d in self.coco_dirs]
            if not any(osp.isdir(d) for d in dirs):
                raise FileNotFoundError(f'none of the COCO image folders {dirs} exists')
            self._coco_index = {}
            for d in dirs:
                if osp.isdir(d):
                    for name in os.listdir(d):
                        self._coco_index.setdefault(name, osp.join(d, name))
        name = osp.basename(panel_file).split('_')[0]
        name = osp.splitext(name)[0] + self.img_suffix
        if name not in self._coco_index:
            raise FileNotFoundError(
                f'{where} ({panel_file}): its COCO image {name} is in none of '
                f'{[osp.join(self.data_prefix["img_path"], d) for d in self.coco_dirs]}')
        return self._coco_index[name]

    def load_data_list(self) -> List[dict]:
        source = self.ann_file or self.data_prefix['panel_path']
        data_list = []
        for i, rec in enumerate(self._records()):
            where = f'{source}: record {i}'
            panel_file = self._panel_file(rec[self.panel_key], where)
            if 'img' in self.panels:
                img_path = panel_file
            elif self.img_key:
                if self.img_key not in rec:
                    raise KeyError(f'{where} has no {self.img_key!r} (img_key), it has '
                                   f'{sorted(rec)}')
                img_path = osp.join(self.data_prefix['img_path'], rec[self.img_key])
                if not osp.isfile(img_path):
                    raise FileNotFoundError(f'{where} ({panel_file}) points to a missing image '
                                            f'{img_path}')
            else:
                img_path = self._coco_image(panel_file, where)
            info = {k: v for k, v in rec.items() if k not in (self.panel_key, self.img_key)}
            info.update(img_path=img_path, panel_path=panel_file, panels=self.panels)
            data_list.append(info)
        return data_list
