import io
import os.path as osp
import pickle
from typing import Dict, List, Optional

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Builds only pickle's plain containers and strings: the official GMS
    split files hold nothing else, and refusing every global keeps a crafted
    file from running code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f'global {module}.{name} is not allowed')


def read_gms_split_file(path: str) -> Dict[str, List[str]]:
    """Read an official GMS split file (King-HAW/GMS
    ``Dataset/<name>/<name>_train_test_names.pkl``):
    ``{'train': {'name_list': [stem, ...]}, 'test': {'name_list': [...]}}``.

    Returns:
        ``{split: [stem, ...]}`` for every split in the file.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` and what was expected.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'GMS split file not found: {path}')
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        obj = _NoGlobalsUnpickler(io.BytesIO(raw)).load()
    except Exception as e:  # any unpickling failure is a malformed file
        raise ValueError(f'{path} is not a GMS split pickle (plain dicts, lists and strings '
                         f'only): {e}') from e
    expected = "{'train': {'name_list': [str, ...]}, 'test': {'name_list': [...]}}"
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f'{path}: expected {expected}, got {type(obj).__name__}')
    splits = {}
    for split, entry in obj.items():
        names = entry.get('name_list') if isinstance(entry, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f'{path}: split {split!r} must be a dict with a "name_list" list of '
                             f'strings ({expected})')
        splits[split] = names
    return splits


@DATASETS.register_module()
class MedicalSegDataset(BaseDataset):
    """Binary lesion segmentation in the BUSI / Kvasir-SEG folder layout.

    ::

        data_root/
          images/<stem><img_suffix>        e.g. images/case_00000.png
          masks/<stem><mask_suffix>        e.g. masks/case_00000.png (0/255 or 0/1)
          splits/{train,val,test}.txt      one stem per line

    ``ann_file`` is the split file (relative to ``data_root``); leave it empty
    to use every image in ``images/``. An official GMS split pickle
    (``<name>_train_test_names.pkl``, read by :func:`read_gms_split_file`)
    works too, with ``split`` naming its ``'train'`` or ``'test'`` list. The
    original BUSI release keeps masks next to the images as
    ``<stem>_mask.png``: use ``data_prefix=dict(img_path='benign',
    seg_map_path='benign'), mask_suffix='_mask.png'``.
    """

    METAINFO = dict(classes=('background', 'lesion'), palette=[(0, 0, 0), (255, 64, 64)])

    def __init__(self,
                 img_suffix: str = '.png',
                 mask_suffix: str = '.png',
                 data_prefix: Optional[dict] = None,
                 split: Optional[str] = None,
                 **kwargs) -> None:
        self.split = split
        self.img_suffix = img_suffix
        self.mask_suffix = mask_suffix
        data_prefix = data_prefix or dict(img_path='images', seg_map_path='masks')
        super().__init__(data_prefix=data_prefix, **kwargs)

    def _read_stems(self) -> List[str]:
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'split file not found: {self.ann_file}')
            if self.ann_file.endswith('.pkl'):
                splits = read_gms_split_file(self.ann_file)
                if self.split not in splits:
                    raise ValueError(f'{self.ann_file} has splits {sorted(splits)}; set the '
                                     f'dataset\'s split= to one of them (got {self.split!r})')
                if not splits[self.split]:
                    raise ValueError(f'split {self.split!r} of {self.ann_file} lists no samples')
                return splits[self.split]
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
