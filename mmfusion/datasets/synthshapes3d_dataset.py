"""SynthShapes3D: procedural 3D objects with captions and held-out classes."""
import json
import os.path as osp
from typing import List

from mmfusion.registry import DATASETS

from .pointcloud_datasets import ModelNet40Dataset
from .synthshapes3d_meta import HELD_OUT


@DATASETS.register_module()
class SynthShapes3DDataset(ModelNet40Dataset):
    """SynthShapes3D as ``tools/dataset_converters/generate_synthshapes3d.py``
    writes it: the ModelNet40 resampled layout (``shape_names.txt``,
    ``{train,val,test}.txt``, ``<class>/<id>.txt``) plus ``captions.json``
    (sample id -> captions).

    Each sample also gets ``captions`` (a list of str, for
    ``SampleCaption``); ``metainfo['held_out']`` lists the classes that never
    occur in ``train``/``val`` (present in ``test``), for the seen/held-out
    split of zero-shot metrics and probes.

    Raises:
        FileNotFoundError: ``captions.json`` missing (say which dataset).
        KeyError: a sample without captions.
    """

    def __init__(self, data_root: str, split: str = 'train', **kwargs) -> None:
        kwargs.setdefault('names_file', 'shape_names.txt')
        kwargs.setdefault('split_file', '{split}.txt')
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        metainfo.setdefault('held_out', list(HELD_OUT))
        super().__init__(data_root, split, layout='resampled', metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        path = osp.join(self.data_root, 'captions.json')
        if not osp.isfile(path):
            raise FileNotFoundError(f'SynthShapes3D captions file not found: {path} (written by '
                                    'tools/dataset_converters/generate_synthshapes3d.py)')
        with open(path) as f:
            captions = json.load(f)
        for info in data_list:
            if info['sample_id'] not in captions:
                raise KeyError(f'{path} has no captions for sample {info["sample_id"]!r}')
            info['captions'] = list(captions[info['sample_id']])
        return data_list
