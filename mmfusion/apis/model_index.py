"""The model index: every config folder's ``metafile.yml`` (OpenMMLab's
schema: ``Collections`` and ``Models`` with ``Name``, ``In Collection``,
``Config``, ``Metadata``, ``Results``, ``Weights``), gathered by the root
``model-index.yml``, and the two calls that read it::

    from mmfusion.apis import get_model, list_models
    list_models('xdecoder*')
    model = get_model('xdecoder_focalt_8xb4-50e_coco-panoptic', pretrained='converted.pth')

A model's name is its config file's stem. Nothing is downloaded: a model's
``Weights`` names the official release (to fetch and convert, see
docs/model_zoo.md) or the file a make target trains here.
"""
import difflib
import fnmatch
import os
import os.path as osp
from typing import Dict, List, Optional, Union

import yaml

#: The source checkout holding ``model-index.yml`` and ``configs/``
#: (``MMFUSION_ROOT`` overrides it, e.g. for an installed package).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _root() -> str:
    root = os.environ.get('MMFUSION_ROOT', REPO_ROOT)
    if not osp.isfile(osp.join(root, 'model-index.yml')):
        raise FileNotFoundError(
            f'no model-index.yml in {root}: the model index lives in the mmfusion source '
            'checkout; set MMFUSION_ROOT to that folder')
    return root


def load_model_index(root: Optional[str] = None) -> Dict[str, dict]:
    """``{name: model entry}`` of every metafile the root ``model-index.yml``
    imports; each entry also gets ``Collection`` (its collection's entry) and
    ``Metafile`` (the metafile's path)."""
    root = root or _root()
    with open(osp.join(root, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    models: Dict[str, dict] = {}
    for metafile in index['Import']:
        path = osp.join(root, metafile)
        with open(path) as f:
            meta = yaml.safe_load(f)
        collections = {c['Name']: c for c in meta.get('Collections', [])}
        for model in meta.get('Models', []):
            name = model['Name']
            if name in models:
                raise ValueError(f'{path}: model {name!r} is also listed in '
                                 f'{models[name]["Metafile"]}')
            if model.get('In Collection') not in collections:
                raise ValueError(f'{path}: model {name!r} is in collection '
                                 f'{model.get("In Collection")!r}, which the file does not define')
            models[name] = dict(model, Collection=collections[model['In Collection']],
                                Metafile=metafile)
    return models


def list_models(pattern: Optional[str] = None) -> List[str]:
    """Sorted names of the indexed models, optionally those matching the
    shell-style ``pattern`` (e.g. ``'xdecoder*'``, ``'*synthshapes*'``)."""
    names = sorted(load_model_index())
    return names if pattern is None else [n for n in names if fnmatch.fnmatch(n, pattern)]


def model_info(name: str) -> dict:
    """The index entry of ``name`` (a clear error with close names if unknown)."""
    models = load_model_index()
    if name not in models:
        close = difflib.get_close_matches(name, list(models), n=5, cutoff=0.4)
        raise KeyError(f'no model {name!r} in the model index'
                       + (f'; did you mean {close}?' if close else
                          '; list_models() lists them'))
    return models[name]


def get_model(name: str, pretrained: Union[str, bool, None] = None, device: str = 'cpu',
              cfg_options: Optional[dict] = None):
    """Build an indexed model from its config and load weights.

    Args:
        name: a name from :func:`list_models`.
        pretrained: a checkpoint path; ``True`` loads the entry's ``Weights``
            when it is a local file (those a make target or the publishing
            step wrote); ``None``/``False``: the config's own initialisation.
        device: where the model goes.
        cfg_options: overrides merged into the config (as ``--cfg-options``).

    Returns:
        The model in eval mode, with ``cfg`` (for the test pipeline).
    """
    from .inference import init_model
    info = model_info(name)
    root = _root()
    checkpoint = None
    if pretrained is True:
        weights = info.get('Weights')
        local = weights and not str(weights).startswith(('http://', 'https://'))
        checkpoint = osp.join(root, weights) if local else None
        if checkpoint is None or not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'{name}: its weights {weights!r} are not on this machine and nothing is '
                'downloaded; ' + ('fetch the official file and convert it (docs/model_zoo.md), '
                                  'then pass pretrained=PATH' if not local else
                                  'run the make target that trains it (the README of '
                                  f'{osp.dirname(info["Config"])})'))
    elif pretrained:
        checkpoint = str(pretrained)
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'{name}: checkpoint file not found: {checkpoint}')
    return init_model(osp.join(root, info['Config']), checkpoint, device=device,
                      cfg_options=cfg_options)
