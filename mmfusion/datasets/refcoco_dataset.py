import os.path as osp
import pickle
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS

from .coco_utils import category_names, load_coco_json


class _PlainDataUnpickler(pickle.Unpickler):
    """RefCOCO's refs files hold only lists, dicts, strings and numbers, so
    any global (a class or function, i.e. code) is refused: loading a refs file
    cannot execute anything."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f'refuses to load global {module}.{name}')


@DATASETS.register_module()
class RefCocoDataset(BaseDataset):
    """RefCOCO / RefCOCO+ / RefCOCOg referring segmentation (the ``refer`` layout).

    ``data_root`` holds ``instances.json`` (COCO instances of all splits) and
    ``refs(<split_by>).p`` (a pickled list of refs: ``ref_id``, ``ann_id``,
    ``image_id``, ``split``, ``sentences`` with ``sent``/``raw``/``sent_id``),
    e.g. ``refcoco/refs(unc).p``, ``refcocog/refs(umd).p``. Images live under
    ``data_prefix['img_path']`` with the instances file's ``file_name``.

    Args:
        split_by (str): Part of the refs file name, ``refs(<split_by>).p``.
        split (str | Sequence[str]): Keep refs whose ``split`` is one of these
            (``train``, ``val``, ``testA``...).
        per_sentence (bool): One sample per (ref, sentence) with ``text`` a
            str (default); otherwise one sample per ref with ``text`` the
            list of its sentences.
        instances_file (str): The COCO instances file, relative to data_root.

    Each sample holds ``img_path``, ``height``/``width``, ``ori_shape``,
    ``text``, ``ref_id``, ``ann_id``, ``sent_id`` (or ``sent_ids``),
    ``category`` (the class name), ``bbox`` (xywh) and ``segmentation`` (the
    referred object's COCO polygons or RLE); decode it with
    :class:`~mmfusion.datasets.transforms.LoadReferringMask`.
    """

    def __init__(self, split_by: str = 'unc', split: Union[str, Sequence[str]] = 'train',
                 per_sentence: bool = True, instances_file: str = 'instances.json',
                 ann_file: Optional[str] = None, **kwargs) -> None:
        self.split_by = split_by
        self.split = (split,) if isinstance(split, str) else tuple(split)
        self.per_sentence = per_sentence
        self.instances_file = instances_file
        super().__init__(ann_file=ann_file or f'refs({split_by}).p', **kwargs)

    def load_data_list(self) -> List[dict]:
        inst_path = self.instances_file
        if self.data_root and not osp.isabs(inst_path):
            inst_path = osp.join(self.data_root, inst_path)
        refs, cat_names = load_refs(self.ann_file, inst_path)
        self._metainfo.setdefault('classes', tuple(cat_names.values()))
        splits_seen = {ref['split'] for ref in refs}
        data_list = []
        for ref in refs:
            if ref['split'] not in self.split:
                continue
            img = ref['image']
            base = dict(img_path=osp.join(self.data_prefix.get('img_path', ''), img['file_name']),
                        height=img['height'], width=img['width'],
                        ori_shape=(img['height'], img['width']), ref_id=ref['ref_id'],
                        ann_id=ref['ann_id'], img_id=img['id'], bbox=ref['bbox'],
                        category=ref['category'], segmentation=ref['segmentation'])
            if self.per_sentence:
                for text, sent_id in zip(ref['sentences'], ref['sent_ids']):
                    data_list.append(dict(base, text=text, sent_id=sent_id))
            else:
                data_list.append(dict(base, text=ref['sentences'], sent_ids=ref['sent_ids']))
        if not data_list:
            raise ValueError(f'{self.ann_file}: no refs in split(s) {list(self.split)}; the file '
                             f'has splits {sorted(splits_seen)}')
        return data_list


def load_refs(refs_path: str, instances_path: str) -> Tuple[List[dict], Dict[int, str]]:
    """Read a RefCOCO ``refs(*).p`` and its COCO instances file.

    Returns:
        tuple: the refs, each a dict with ``ref_id``, ``ann_id``, ``split``,
        ``image`` (the instances file's image entry), ``bbox``,
        ``segmentation`` (COCO polygons or RLE), ``category`` (name),
        ``sentences`` (str each) and ``sent_ids``; and the category names
        by id.
    """
    for path in (refs_path, instances_path):
        if not osp.isfile(path):
            raise FileNotFoundError(f'RefCOCO file not found: {path}')
    with open(refs_path, 'rb') as f:
        try:
            raw_refs = _PlainDataUnpickler(f, encoding='latin1').load()
        except pickle.UnpicklingError as e:
            raise ValueError(f'{refs_path} is not a RefCOCO refs pickle of plain data: '
                             f'{e}') from e
    coco = load_coco_json(instances_path, 'instances')
    images = {img['id']: img for img in coco['images']}
    anns = {ann['id']: ann for ann in coco['annotations']}
    cat_names = category_names(coco)
    refs = []
    for ref in raw_refs:
        for key in ('ref_id', 'ann_id', 'image_id', 'split', 'sentences'):
            if key not in ref:
                raise KeyError(f'{refs_path}: ref {ref.get("ref_id")} has no "{key}"')
        ann = anns.get(ref['ann_id'])
        if ann is None:
            raise KeyError(f'{refs_path}: ref {ref["ref_id"]} refers to ann_id '
                           f'{ref["ann_id"]}, which is not in {instances_path}')
        img = images.get(ref['image_id'])
        if img is None:
            raise KeyError(f'{refs_path}: ref {ref["ref_id"]} refers to image_id '
                           f'{ref["image_id"]}, which is not in {instances_path}')
        if 'segmentation' not in ann:
            raise KeyError(f'{instances_path}: annotation {ann["id"]} has no "segmentation"')
        refs.append(dict(ref_id=ref['ref_id'], ann_id=ann['id'], split=ref['split'], image=img,
                         bbox=ann['bbox'], segmentation=ann['segmentation'],
                         category=cat_names.get(ann['category_id']),
                         sentences=[s.get('sent', s.get('raw')) for s in ref['sentences']],
                         sent_ids=[s.get('sent_id') for s in ref['sentences']]))
    return refs, cat_names
