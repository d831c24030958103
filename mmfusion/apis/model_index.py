"""The model index: every config folder's ``metafile.yml`` (OpenMMLab's
schema: ``Collections`` and ``Models`` with ``Name``, ``In Collection``,
``Config``, ``Metadata``, ``Results``, ``Weights``), gathered by the root
``model-index.yml``, and the calls that read it::

    from mmfusion.apis import get_model, list_models
    list_models('xdecoder*')
    model = get_model('xdecoder_focalt_8xb4-50e_coco-panoptic', pretrained='converted.pth')
    model = get_model('sam_vit-tiny_1xb8-2600it_synthshapes', pretrained=True)

A model's name is its config file's stem. Nothing is downloaded. A model's
``Weights`` is either the URL of the authors' release (fetch it, convert it
with ``tools/model_converters/*_to_mmfusion.py`` where the family has a
converter, pass the result as ``pretrained``) or, for the tiny recipes
trained here, the last checkpoint ``tools/train.py`` writes for the config
(``work_dirs/{name}/iter_{max_iters}.pth`` or ``epoch_{max_epochs}.pth``;
the folder's make target runs it). ``make publish`` turns those into
shareable ``work_dirs/published/{name}-{sha256[:8]}.pth`` files, which
``pretrained=True`` also finds (docs/model_zoo.md).
"""
import difflib
import fnmatch
import glob
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple, Union

import yaml

#: The source checkout this package lives in (``configs/`` and the root
#: ``model-index.yml`` sit next to the ``mmfusion`` package, as the tools and
#: tests find them).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
INDEX_FILE = 'model-index.yml'
#: Where ``make publish`` writes (relative to the root).
PUBLISHED_DIR = osp.join('work_dirs', 'published')
#: The make target that trains a family's recipes, where it is not the family's
#: folder name (``make demo`` trains the tiny GMS).
MAKE_TARGETS = {'gms': 'demo'}


def find_root(root: Optional[str] = None) -> str:
    """The folder holding ``model-index.yml`` (and ``configs/``): ``root`` if
    given, else ``$MMFUSION_ROOT`` if set, else the source checkout this
    package lives in, else the current directory (a non-editable install run
    from a checkout). Metafile paths (``Config``, local ``Weights``) are
    relative to it.

    Raises:
        FileNotFoundError: the folder(s) tried hold no index.
    """
    env = os.environ.get('MMFUSION_ROOT')
    candidates = [root] if root else [env] if env else [REPO_ROOT, os.getcwd()]
    for candidate in candidates:
        if osp.isfile(osp.join(candidate, INDEX_FILE)):
            return osp.abspath(candidate)
    raise FileNotFoundError(
        f'no {INDEX_FILE} in {candidates}' + (' ($MMFUSION_ROOT)' if env and not root else '')
        + ': the model index and configs/ live in the mmfusion source checkout; run from it '
        'or set MMFUSION_ROOT to it')


def load_model_index(root: Optional[str] = None) -> Dict[str, dict]:
    """``{name: model entry}`` of every metafile the root ``model-index.yml``
    imports; each entry also gets ``Collection`` (its collection's entry) and
    ``Metafile`` (the metafile's path relative to the root).

    Raises:
        ValueError: a name is listed twice, or a model's collection is not
            defined in its metafile.
    """
    root = find_root(root)
    with open(osp.join(root, INDEX_FILE)) as f:
        index = yaml.safe_load(f)
    models: Dict[str, dict] = {}
    for metafile in index['Import']:
        path = osp.join(root, metafile)
        with open(path) as f:
            meta = yaml.safe_load(f) or {}
        collections = {c['Name']: c for c in meta.get('Collections') or []}
        for model in meta.get('Models') or []:
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
    """Sorted names of the indexed models, optionally only those matching the
    shell-style ``pattern`` (``fnmatch``: ``'xdecoder*'``, ``'*synthshapes*'``)."""
    names = sorted(load_model_index())
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def model_info(name: str) -> dict:
    """The index entry of ``name``.

    Raises:
        KeyError: ``name`` is not indexed; names the closest indexed names.
    """
    models = load_model_index()
    if name not in models:
        close = difflib.get_close_matches(name, list(models), n=5, cutoff=0.5)
        if not close:  # a prefix such as 'mmmamba-teacher' is closest to what starts with it
            close = sorted(n for n in models if n.startswith(name))[:5]
        raise KeyError(f'no model {name!r} in the model index'
                       + (f'; did you mean {close}?' if close else
                          '; list_models() lists the names (config file stems)'))
    return models[name]


def _is_url(path: str) -> bool:
    return str(path).startswith(('http://', 'https://'))


def published_weights(name: str, root: Optional[str] = None) -> List[str]:
    """The files ``make publish`` wrote for ``name``
    (``work_dirs/published/{name}-{8 hex}.{pth,safetensors}``), newest first."""
    folder = osp.join(find_root(root), PUBLISHED_DIR)
    pattern = re.compile(re.escape(name) + r'-[0-9a-f]{8}\.(pth|safetensors)')
    found = [p for p in glob.glob(osp.join(glob.escape(folder), f'{glob.escape(name)}-*'))
             if pattern.fullmatch(osp.basename(p))]
    return sorted(found, key=osp.getmtime, reverse=True)


def _family(info: dict) -> str:
    return osp.basename(osp.dirname(info['Config']))


def resolve_weights(name: str) -> str:
    """The local file ``get_model(name, pretrained=True)`` loads: the entry's
    ``Weights`` when it is a local file that exists (relative to the root),
    else the newest file ``make publish`` wrote for the model.

    Raises:
        FileNotFoundError: neither exists; says that nothing is downloaded and
            what to fetch or which make target trains it.
    """
    info, root = model_info(name), find_root()
    weights = info.get('Weights')
    if weights and not _is_url(weights):
        path = weights if osp.isabs(weights) else osp.join(root, weights)
        if osp.isfile(path):
            return path
    published = published_weights(name, root)
    if published:
        return published[0]
    family = _family(info)
    if not weights:
        raise FileNotFoundError(f'{name}: the model index names no weights for it (it is not '
                                'trained; see its Metadata); pass pretrained=PATH')
    if _is_url(weights):
        converters = sorted(glob.glob(osp.join(root, 'tools', 'model_converters',
                                               f'*{family}*_to_mmfusion.py')))
        convert = (f'convert it with {osp.relpath(converters[0], root)} SRC DST, '
                   if converters else '')
        raise FileNotFoundError(
            f'{name}: its weights are the authors\' release {weights}, and nothing is '
            f'downloaded; fetch it, {convert}then pass pretrained=PATH (docs/model_zoo.md)')
    target = MAKE_TARGETS.get(family, family)
    raise FileNotFoundError(
        f'{name}: {weights} is not on this machine (nor a published copy under '
        f'{PUBLISHED_DIR}/), and nothing is downloaded; train it with `python tools/train.py '
        f'{info["Config"]}` (`make {target}` runs the {family} recipes), or pass '
        'pretrained=PATH')


def model_config(name: str, cfg_options: Optional[dict] = None) -> Tuple[object, List[str]]:
    """``(config, dropped)``: the config :func:`get_model` builds ``name``
    from (its ``Config`` file with ``cfg_options`` merged in) and the weight
    files named inside its ``model`` (pre-trained towers, stage-0
    checkpoints) that are not on this machine, which are set to ``None`` in
    it (``'model.a.b.checkpoint=PATH'`` each)."""
    from mmengine.config import Config

    from mmfusion.utils.config_weights import drop_weight_files
    info = model_info(name)
    cfg = Config.fromfile(osp.join(find_root(), info['Config']))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'{name}: {info["Config"]} defines no model')
    return cfg, drop_weight_files(cfg.model, only_missing=True)


def get_model(name: str, pretrained: Union[str, bool, None] = None, device: str = 'cpu',
              cfg_options: Optional[dict] = None):
    """Build an indexed model from its config and load weights.

    Weight files the config names for its parts (a pre-trained CLIP or SAM,
    a stage-0 checkpoint) that are not on this machine are left out with a
    warning: those parts start from random weights, which a full checkpoint
    given as ``pretrained`` replaces.

    Args:
        name: a name from :func:`list_models` (a config file stem).
        pretrained: a checkpoint path (``.pth`` or ``.safetensors``);
            ``True``: the entry's local ``Weights`` or its published copy
            (:func:`resolve_weights`); ``None``/``False``: no checkpoint.
        device: where the model goes.
        cfg_options: overrides merged into the config (as ``--cfg-options``).

    Returns:
        The model in eval mode, with ``cfg`` (for the test pipeline) and
        ``dataset_meta`` (from the checkpoint).

    Raises:
        KeyError: unknown name (with close names).
        FileNotFoundError: the checkpoint is missing; nothing is downloaded.
    """
    from mmengine.logging import print_log

    from .inference import init_model
    checkpoint = None
    if pretrained is True:
        checkpoint = resolve_weights(name)
    elif pretrained:
        checkpoint = str(pretrained)
        if _is_url(checkpoint):
            raise FileNotFoundError(f'{name}: {checkpoint} is a URL and nothing is '
                                    'downloaded; fetch it and pass the local path')
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'{name}: checkpoint file not found: {checkpoint}')
    cfg, dropped = model_config(name, cfg_options)
    if dropped:
        print_log(f'{name}: weight files of the config are not on this machine; '
                  + ('the checkpoint provides those parts' if checkpoint else
                     'those parts keep random weights') + f': {dropped}',
                  logger='current', level=30 if checkpoint is None else 20)
    return init_model(cfg, checkpoint, device=device)
