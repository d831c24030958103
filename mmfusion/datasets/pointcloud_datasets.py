"""Point-cloud classification datasets: ModelNet40, ScanObjectNN, ShapeNet-55.

Each sample's data_info has ``gt_label`` (int), ``sample_id`` (str, stable
across runs, so feature caches can key on it) and either ``points_path`` (read
by ``LoadPointsFromFile``) or, for ScanObjectNN's h5 files, the ``points``
array itself (the pipeline then needs no loader). ``metainfo['classes']``
holds the class names; passing ``metainfo=dict(classes=[...])`` keeps only
those classes, labelled by their position in that list.
"""
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS

SPLITS = ('train', 'test')

# The 15 ScanObjectNN classes in label order (the official h5 files' label ids).
SCANOBJECTNN_CLASSES = ('bag', 'bin', 'box', 'cabinet', 'chair', 'desk', 'display', 'door',
                        'shelf', 'table', 'bed', 'pillow', 'sink', 'sofa', 'toilet')

# ShapeNetCore (v2) synset ids of the 55 ShapeNet-55 categories -> readable names.
SHAPENET55_SYNSETS = {
    '02691156': 'airplane', '02747177': 'trash bin', '02773838': 'bag', '02801938': 'basket',
    '02808440': 'bathtub', '02818832': 'bed', '02828884': 'bench', '02843684': 'birdhouse',
    '02871439': 'bookshelf', '02876657': 'bottle', '02880940': 'bowl', '02924116': 'bus',
    '02933112': 'cabinet', '02942699': 'camera', '02946921': 'can', '02954340': 'cap',
    '02958343': 'car', '02992529': 'cellphone', '03001627': 'chair', '03046257': 'clock',
    '03085013': 'keyboard', '03207941': 'dishwasher', '03211117': 'display',
    '03261776': 'earphone', '03325088': 'faucet', '03337140': 'file cabinet',
    '03467517': 'guitar', '03513137': 'helmet', '03593526': 'jar', '03624134': 'knife',
    '03636649': 'lamp', '03642806': 'laptop', '03691459': 'loudspeaker', '03710193': 'mailbox',
    '03759954': 'microphone', '03761084': 'microwave', '03790512': 'motorbike', '03797390': 'mug',
    '03928116': 'piano', '03938244': 'pillow', '03948459': 'pistol', '03991062': 'flowerpot',
    '04004475': 'printer', '04074963': 'remote control', '04090263': 'rifle',
    '04099429': 'rocket', '04225987': 'skateboard', '04256520': 'sofa', '04330267': 'stove',
    '04379243': 'table', '04401088': 'telephone', '04460130': 'tower', '04468005': 'train',
    '04530566': 'watercraft', '04554684': 'washer'
}


def _check_split(name: str, split: str, splits: Sequence[str] = SPLITS) -> None:
    if split not in splits:
        raise ValueError(f'{name}: split must be one of {tuple(splits)}, got {split!r}')


def _read_lines(path: str, what: str) -> List[str]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    with open(path) as f:
        lines = [line.strip() for line in f]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f'{what} {path} is empty; expected one entry per line')
    return lines


def _select_classes(name: str, full: Sequence[str], metainfo,
                    aliases: Optional[Dict[str, str]] = None) -> Tuple[dict, Dict[int, int]]:
    """Resolve ``metainfo['classes']`` against the dataset's full class list.

    Returns the metainfo to pass to ``BaseDataset`` (with ``classes`` set) and
    a map from a label in ``full`` to the label in the selected list (classes
    left out are absent from it).

    Raises:
        ValueError: when a requested class is not in ``full`` (or ``aliases``)
            or is requested twice.
    """
    meta = BaseDataset._load_metainfo(metainfo)  # also reads a class-list file path
    requested = meta.get('classes')
    if requested is None:
        meta['classes'] = tuple(full)
        return meta, {i: i for i in range(len(full))}
    if isinstance(requested, str):
        raise ValueError(f'{name}: metainfo classes must be a list of class names, got the '
                         f'string {requested!r}')
    aliases = aliases or {}
    requested = [aliases.get(c, c) for c in requested]
    unknown = [c for c in requested if c not in full]
    if unknown:
        raise ValueError(f'{name}: unknown class(es) {unknown} in metainfo classes; the dataset '
                         f'has these {len(full)} classes: {list(full)}')
    repeated = sorted({c for c in requested if requested.count(c) > 1})
    if repeated:
        raise ValueError(f'{name}: metainfo classes list {repeated} more than once')
    meta['classes'] = tuple(requested)
    return meta, {full.index(c): i for i, c in enumerate(requested)}


@DATASETS.register_module()
class ModelNet40Dataset(BaseDataset):
    """ModelNet40 (or ModelNet10) shape classification.

    Two folder layouts (``layout``):

    ``'resampled'`` (Point-MAE / PointNet++ ``modelnet40_normal_resampled``)::

        data_root/
          modelnet40_shape_names.txt      one class per line (label order)
          modelnet40_train.txt            one sample id per line: airplane_0001
          modelnet40_test.txt
          airplane/airplane_0001.txt      rows "x,y,z,nx,ny,nz"

      The class of ``night_stand_0001`` is the id without its ``_NNNN``.
      A class name with spaces (``tall cone``) has its spaces written as
      ``_`` in folder names and ids (``tall_cone/tall_cone_0007.txt``).

    ``'mesh'`` (the original ModelNet40 release, and the layout
    ``tools/dataset_converters/cgal_meshes_to_modelnet.py`` writes)::

        data_root/
          modelnet40_shape_names.txt      optional; else the sorted class folders
          airplane/train/airplane_0001.off
          airplane/test/airplane_0627.off

    Samples are ``dict(points_path, gt_label, sample_id)``; pair them with
    ``LoadPointsFromFile`` (``use_dims=[0, 1, 2]`` drops the normals of the
    txt files; OFF meshes are surface-sampled).

    Args:
        data_root: the dataset folder.
        split: ``'train'``, ``'val'`` (datasets written in this layout with a
            validation split) or ``'test'``.
        layout: ``'resampled'`` or ``'mesh'``.
        names_file: class list, relative to ``data_root``
            (``modelnet10_shape_names.txt`` for ModelNet10).
        split_file: sample list of the ``'resampled'`` layout, relative to
            ``data_root``; ``{split}`` is replaced by the split.
        **kwargs: ``BaseDataset`` arguments (``pipeline``, ``metainfo``,
            ``indices``, ``serialize_data``, ``test_mode``, ``lazy_init``, ...).
            ``metainfo=dict(classes=[...])`` keeps only those classes,
            labelled 0..k-1 in the given order.

    Raises:
        FileNotFoundError: naming the path, for a missing data root, class
            list, split file, class folder or sample file.
        ValueError: for an unknown split/layout, an empty list, a sample id
            without ``_NNNN`` or of an unknown class, or an unknown class in
            ``metainfo``.
    """

    LAYOUTS = ('resampled', 'mesh')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 layout: str = 'resampled',
                 names_file: str = 'modelnet40_shape_names.txt',
                 split_file: str = 'modelnet40_{split}.txt',
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        name = self.__class__.__name__
        _check_split(name, split, ('train', 'val', 'test'))
        if layout not in self.LAYOUTS:
            raise ValueError(f'{name}: layout must be one of {self.LAYOUTS}, got {layout!r}')
        if not osp.isdir(data_root):
            raise FileNotFoundError(f'{name} data_root not found: {data_root}')
        self.split = split
        self.layout = layout
        self.names_file = osp.join(data_root, names_file)
        self.split_file = osp.join(data_root, split_file.format(split=split))
        self.all_classes = self._read_classes(data_root)
        metainfo, self._label_map = _select_classes(name, self.all_classes, metainfo)
        super().__init__(data_root=data_root, metainfo=metainfo, **kwargs)

    def _read_classes(self, data_root: str) -> List[str]:
        if self.layout == 'resampled' or osp.isfile(self.names_file):
            classes = _read_lines(self.names_file, 'ModelNet class names file')
        else:
            classes = sorted(d for d in os.listdir(data_root)  # not .git, __MACOSX, ...
                             if osp.isdir(osp.join(data_root, d)) and not d.startswith(('.', '__')))
            if not classes:
                raise FileNotFoundError(f'ModelNet mesh layout: no class folders in {data_root} '
                                        f'and no class names file {self.names_file}')
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise ValueError(f'class names file {self.names_file} lists {repeated} twice')
        return classes

    def load_data_list(self) -> List[dict]:
        data_list = (self._load_resampled() if self.layout == 'resampled'
                     else self._load_meshes())
        if not data_list:
            raise ValueError(f'{self.__class__.__name__}: no {self.split} samples of the classes '
                             f'{list(self.metainfo["classes"])} in {self.data_root}')
        return data_list

    def _load_resampled(self) -> List[dict]:
        lines = _read_lines(self.split_file, 'ModelNet split file')
        index = {c.replace(' ', '_'): i for i, c in enumerate(self.all_classes)}
        data_list = []
        for lineno, sample_id in enumerate(lines, 1):
            match = re.fullmatch(r'(.+)_(\d+)', sample_id)
            if match is None:
                raise ValueError(f'{self.split_file} line {lineno}: sample id {sample_id!r} does '
                                 'not end in _NNNN; expected e.g. airplane_0001')
            cls = match.group(1)
            if cls not in index:
                raise ValueError(f'{self.split_file} line {lineno}: class {cls!r} of '
                                 f'{sample_id!r} is not in {self.names_file}')
            if index[cls] not in self._label_map:
                continue
            path = osp.join(self.data_root, cls, sample_id + '.txt')
            if not osp.isfile(path):
                raise FileNotFoundError(f'point file of {sample_id!r} ({self.split_file} line '
                                        f'{lineno}) not found: {path}')
            data_list.append(dict(points_path=path, gt_label=self._label_map[index[cls]],
                                  sample_id=sample_id))
        return data_list

    def _load_meshes(self) -> List[dict]:
        data_list = []
        for full_label, cls in enumerate(self.all_classes):
            if full_label not in self._label_map:
                continue
            folder = osp.join(self.data_root, cls.replace(' ', '_'), self.split)
            if not osp.isdir(folder):
                raise FileNotFoundError(f'ModelNet mesh layout: folder of class {cls!r}, split '
                                        f'{self.split!r} not found: {folder}')
            for fname in sorted(os.listdir(folder)):
                if fname.lower().endswith('.off'):
                    data_list.append(dict(points_path=osp.join(folder, fname),
                                          gt_label=self._label_map[full_label],
                                          sample_id=osp.splitext(fname)[0]))
        return data_list


@DATASETS.register_module()
class ScanObjectNNDataset(BaseDataset):
    """ScanObjectNN object classification from the official h5 files.

    ::

        data_root/
          main_split/training_objectdataset_augmentedrot_scale75.h5   hardest (PB-T50-RS)
          main_split/test_objectdataset_augmentedrot_scale75.h5
          main_split/{training,test}_objectdataset.h5                 objectbg (OBJ-BG)
          main_split_nobg/{training,test}_objectdataset.h5            objectonly (OBJ-ONLY)

    A file is also found directly in ``data_root`` (Point-MAE's configs point
    the root at ``main_split`` or ``main_split_nobg``). Keys: ``data``
    (N, 2048, 3) float32 and ``label`` (N,) int in [0, 15). The clouds are
    read into memory and go into data_info as ``points`` ((2048, 3) float32,
    a copy per sample), so the pipeline needs no loader;
    ``PackFusionInputs`` packs them. Each sample also has ``gt_label``,
    ``num_points``, ``sample_id`` (``'<variant>_<split>_<index>'``) and
    ``h5_path``.

    Args:
        data_root: folder holding ``main_split`` / ``main_split_nobg``.
        split: ``'train'`` or ``'test'``.
        variant: ``'hardest'``, ``'objectbg'`` or ``'objectonly'``.
        **kwargs: ``BaseDataset`` arguments; ``metainfo=dict(classes=[...])``
            keeps only those of the 15 classes.

    Raises:
        FileNotFoundError: naming the paths tried, when the h5 file is missing.
        ValueError: naming the file and key, when ``data``/``label`` are
            missing, have the wrong shape or values (NaN/inf points, labels
            outside [0, 15)), or hold no samples.
    """

    METAINFO = dict(classes=SCANOBJECTNN_CLASSES)
    VARIANTS = {
        'hardest': ('main_split', 'objectdataset_augmentedrot_scale75.h5'),
        'objectbg': ('main_split', 'objectdataset.h5'),
        'objectonly': ('main_split_nobg', 'objectdataset.h5'),
    }

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 variant: str = 'hardest',
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        name = self.__class__.__name__
        _check_split(name, split)
        if variant not in self.VARIANTS:
            raise ValueError(f'{name}: variant must be one of {tuple(self.VARIANTS)}, got '
                             f'{variant!r}')
        self.split = split
        self.variant = variant
        folder, suffix = self.VARIANTS[variant]
        fname = ('training_' if split == 'train' else 'test_') + suffix
        candidates = [osp.join(data_root, folder, fname), osp.join(data_root, fname)]
        found = [p for p in candidates if osp.isfile(p)]
        if not found:
            raise FileNotFoundError(f'ScanObjectNN {variant} {split} file not found: tried '
                                    f'{candidates}')
        self.h5_path = found[0]
        metainfo, self._label_map = _select_classes(name, SCANOBJECTNN_CLASSES, metainfo)
        super().__init__(data_root=data_root, metainfo=metainfo, **kwargs)

    def _read_h5(self) -> Tuple[np.ndarray, np.ndarray]:
        import h5py
        path = self.h5_path
        try:
            with h5py.File(path, 'r') as f:
                missing = [k for k in ('data', 'label') if k not in f]
                if missing:
                    raise ValueError(f'ScanObjectNN file {path} lacks key(s) {missing} (keys: '
                                     f'{sorted(f.keys())}); expected "data" and "label"')
                points, labels = f['data'][()], f['label'][()]
        except OSError as e:  # not an HDF5 file, truncated, ...
            raise ValueError(f'cannot read ScanObjectNN file {path}: {e}') from e
        if points.ndim != 3 or points.shape[2] < 3 or points.shape[1] == 0:
            raise ValueError(f'ScanObjectNN file {path}: "data" has shape {points.shape}; '
                             'expected (N, num_points, 3)')
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != (len(points), ):
            raise ValueError(f'ScanObjectNN file {path}: "label" has shape {labels.shape}; '
                             f'expected ({len(points)},), one label per cloud of "data"')
        if not len(points):
            raise ValueError(f'ScanObjectNN file {path} holds no samples')
        if labels.dtype.kind not in 'iu' and not (labels.dtype.kind == 'f' and np.array_equal(
                labels, np.round(labels))):
            raise ValueError(f'ScanObjectNN file {path}: "label" has dtype {labels.dtype}; '
                             'expected integers')
        labels = labels.astype(np.int64)
        bad = np.flatnonzero((labels < 0) | (labels >= len(SCANOBJECTNN_CLASSES)))
        if bad.size:
            raise ValueError(f'ScanObjectNN file {path}: label {labels[bad[0]]} of sample '
                             f'{bad[0]} is outside [0, {len(SCANOBJECTNN_CLASSES)})')
        finite = np.isfinite(points).reshape(len(points), -1).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(f'ScanObjectNN file {path}: "data" has NaN/inf values in '
                             f'{bad.size} clouds (first: sample {bad[0]})')
        return points, labels

    def load_data_list(self) -> List[dict]:
        points, labels = self._read_h5()
        data_list = []
        for i, (cloud, label) in enumerate(zip(points, labels)):
            if int(label) not in self._label_map:
                continue
            data_list.append(dict(points=np.array(cloud[:, :3], dtype=np.float32),
                                  num_points=cloud.shape[0],
                                  gt_label=self._label_map[int(label)],
                                  sample_id=f'{self.variant}_{self.split}_{i:05d}',
                                  h5_path=self.h5_path))
        if not data_list:
            raise ValueError(f'{self.h5_path}: no samples of the classes '
                             f'{list(self.metainfo["classes"])}')
        return data_list


@DATASETS.register_module()
class ShapeNet55Dataset(BaseDataset):
    """ShapeNet-55 point clouds (Point-MAE / Point-BERT pre-training data).

    ::

        data_root/
          ShapeNet-55/train.txt           02691156-1a04e3eab45ca15dd86060f189eb133.npy
          ShapeNet-55/test.txt
          shapenet_pc/02691156-1a04e3eab45ca15dd86060f189eb133.npy   (8192, 3) float

    The label is the index of the synset (the part before ``-``) in the
    sorted list of synsets in ``train.txt``. ``metainfo['classes']`` are the
    readable ShapeNetCore names (``'airplane'``, ``'trash bin'``, ...; a
    synset missing from the built-in table keeps its id), or the synset ids
    with ``synset_names=False``; ``metainfo['synsets']`` always holds the ids.
    A ``metainfo`` class selection may use names or ids. Samples are
    ``dict(points_path, gt_label, sample_id)`` (``sample_id`` is the file
    name without ``.npy``); load them with ``LoadPointsFromFile``.

    Args:
        data_root: the dataset folder.
        split: ``'train'`` or ``'test'``.
        pc_dir: folder of the ``.npy`` clouds, relative to ``data_root``.
        split_dir: folder of ``train.txt`` / ``test.txt`` (``'ShapeNet-34'``
            for the ShapeNet-34 split).
        synset_names: use readable names as ``classes``.
        **kwargs: ``BaseDataset`` arguments.

    Raises:
        FileNotFoundError: naming the path, for a missing split file or
            point file.
        ValueError: for a malformed line (naming the file and line), a test
            synset absent from ``train.txt``, or an unknown class in
            ``metainfo``.
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pc_dir: str = 'shapenet_pc',
                 split_dir: str = 'ShapeNet-55',
                 synset_names: bool = True,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        name = self.__class__.__name__
        _check_split(name, split)
        self.split = split
        self.pc_dir = osp.join(data_root, pc_dir)
        self.train_file = osp.join(data_root, split_dir, 'train.txt')
        self.split_file = osp.join(data_root, split_dir, f'{split}.txt')
        synsets = sorted({synset for _, synset, _ in self._parse(self.train_file)})
        if split == 'test' and not osp.isfile(self.split_file):  # before the model loads
            raise FileNotFoundError(f'ShapeNet split file not found: {self.split_file}')
        self.synsets = synsets
        names = [SHAPENET55_SYNSETS.get(s, s) if synset_names else s for s in synsets]
        aliases = {}  # a synset id or its readable name -> the name shown in classes
        for synset, shown in zip(synsets, names):
            aliases[synset] = shown
            if synset in SHAPENET55_SYNSETS:
                aliases[SHAPENET55_SYNSETS[synset]] = shown
        metainfo, self._label_map = _select_classes(name, names, metainfo, aliases)
        metainfo['synsets'] = tuple(synsets[i] for i in sorted(self._label_map,
                                                                key=self._label_map.get))
        super().__init__(data_root=data_root, metainfo=metainfo, **kwargs)

    @staticmethod
    def _parse(path: str) -> List[Tuple[int, str, str]]:
        entries = []
        for lineno, line in enumerate(_read_lines(path, 'ShapeNet split file'), 1):
            match = re.fullmatch(r'(\d+)-[^/\\]+\.npy', line)
            if match is None:
                raise ValueError(f'{path} line {lineno}: {line!r} is not '
                                 '"<synset>-<model_id>.npy" (e.g. 02691156-1a04e3eab45ca15dd86'
                                 '060f189eb133.npy)')
            entries.append((lineno, match.group(1), line))
        return entries

    def load_data_list(self) -> List[dict]:
        index = {s: i for i, s in enumerate(self.synsets)}
        data_list = []
        for lineno, synset, fname in self._parse(self.split_file):
            if synset not in index:
                raise ValueError(f'{self.split_file} line {lineno}: synset {synset} of {fname} '
                                 f'does not occur in {self.train_file}, so it has no label')
            if index[synset] not in self._label_map:
                continue
            path = osp.join(self.pc_dir, fname)
            if not osp.isfile(path):
                raise FileNotFoundError(f'point file of {fname} ({self.split_file} line '
                                        f'{lineno}) not found: {path}')
            data_list.append(dict(points_path=path, gt_label=self._label_map[index[synset]],
                                  sample_id=fname[:-len('.npy')]))
        if not data_list:
            raise ValueError(f'{self.split_file}: no samples of the classes '
                             f'{list(self.metainfo["classes"])}')
        return data_list
