import os.path as osp
from typing import List, Optional

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS


@DATASETS.register_module()
class MedicalSegDataset(BaseDataset):
    """Binary lesion segmentation in the BUSI / Kvasir-SEG folder layout.

    ::

        data_root/
          images/<stem><img_suffix>        e.g. images/case_00000.png
          masks/<stem><mask_suffix>        e.g. masks/case_00000.png (0/255 or 0/1)
          splits/{train,val,test}.txt      one stem per line

    ``ann_file`` is the split file (relative to ``data_root``); leave it empty
    to use every image in ``images/``. BUSI keeps masks next to the images as
    ``<stem>_mask.png``: use ``data_prefix=dict(img_path='benign',
    seg_map_path='benign'), mask_suffix='_mask.png'``.
    """

    METAINFO = dict(classes=('background', 'lesion'), palette=[(0, 0, 0), (255, 64, 64)])

    def __init__(self,
                 img_suffix: str = '.png',
                 mask_suffix: str = '.png',
                 data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        self.img_suffix = img_suffix
        self.mask_suffix = mask_suffix
        data_prefix = data_prefix or dict(img_path='images', seg_map_path='masks')
        super().__init__(data_prefix=data_prefix, **kwargs)

    def _read_stems(self) -> List[str]:
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'split file not found: {self.ann_file}')
            with open(self.ann_file) as f:
                stems = [line.strip() for line in f if line.strip()]
            if not stems:
                raise ValueError(f'split file {self.ann_file} lists no samples')
            return stems
        img_dir = self.data_prefix['img_path']
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'image folder not found: {img_dir}')
        from mmengine.fileio import list_dir_or_file
        return sorted(
            name[:-len(self.img_suffix)]
            for name in list_dir_or_file(img_dir, list_dir=False, suffix=self.img_suffix)
            if not (self.mask_suffix != self.img_suffix and name.endswith(self.mask_suffix)))

    def load_data_list(self) -> List[dict]:
        data_list = []
        for stem in self._read_stems():
            img_path = osp.join(self.data_prefix['img_path'], stem + self.img_suffix)
            seg_map_path = osp.join(self.data_prefix['seg_map_path'], stem + self.mask_suffix)
            for path, what in ((img_path, 'image'), (seg_map_path, 'mask')):
                if not osp.isfile(path):
                    raise FileNotFoundError(
                        f'{what} for sample {stem!r} listed in {self.ann_file or "images/"} '
                        f'not found: {path}')
            data_list.append(dict(img_path=img_path, seg_map_path=seg_map_path, sample_id=stem))
        return data_list
