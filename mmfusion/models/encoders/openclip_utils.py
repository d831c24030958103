"""Shared pieces of the open_clip encoder wrappers.

open_clip builds a CLIP model as two towers (``visual`` and the text tower)
from one config dict. The wrappers build only the tower they need (a text
encoder for ViT-bigG should not allocate the 1.8B-parameter image tower), read
open_clip's checkpoint formats; each wrapper loads its tower's subset with
:func:`mmfusion.utils.load_strict`.
"""
import copy
import difflib
import warnings
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Tuple

from torch import Tensor, nn

from mmfusion.utils import load_state_dict_file, select_prefix
from mmfusion.utils.dependency import require

# open_clip's default (OpenAI) preprocessing, used when nothing else is known.
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def import_open_clip(user: str) -> ModuleType:
    """Import open_clip or fail with an install hint naming ``user``."""
    return require('open_clip', user, 'open_clip_torch')


def resolve_model_cfg(user: str,
                      model_name: Optional[str] = None,
                      model_cfg: Optional[dict] = None,
                      pretrained_tag: Optional[str] = None,
                      tower: Optional[str] = None) -> Tuple[dict, dict]:
    """Find the open_clip model config and its image preprocessing.

    Args:
        user: class name for error messages.
        model_name: a built-in open_clip architecture (``open_clip.list_models()``).
        model_cfg: ``dict(embed_dim=..., vision_cfg=..., text_cfg=...)`` as in
            open_clip's ``model_configs/*.json``, or the content of an
            ``open_clip_config.json`` (``dict(model_cfg=..., preprocess_cfg=...)``).
        pretrained_tag: open_clip pretrained tag the weights come from (e.g.
            ``'laion2b_s34b_b79k'``); only its metadata (mean/std, QuickGELU)
            is read, nothing is downloaded. Needs ``model_name``.
        tower: ``'visual'`` or ``'text'``: only that tower's config is
            required (a CLIP trained with another text tower, e.g. mmfusion's
            ``BagOfWordsTextEncoder``, has no ``text_cfg``); ``None``: both.

    Returns:
        ``(model_cfg, preprocess_cfg)``: a private copy of the model config and
        a dict with ``mean``/``std`` (0-1 scale).
    """
    open_clip = import_open_clip(user)
    if (model_name is None) == (model_cfg is None):
        raise ValueError(f'{user}: give exactly one of `model_name` and `model_cfg`')
    preprocess: dict = {}
    if model_name is not None:
        if ':' in model_name:
            raise ValueError(f'{user}: model_name {model_name!r} uses a schema (hf-hub:, '
                             'local-dir:); '
                             'pass the open_clip_config.json content as `model_cfg` and the '
                             'weights file as `checkpoint` instead')
        cfg = open_clip.get_model_config(model_name)
        if cfg is None:
            close = difflib.get_close_matches(model_name, open_clip.list_models(), n=5)
            raise ValueError(f'{user}: unknown open_clip model_name {model_name!r}; close names: '
                             f'{close} (all names: open_clip.list_models())')
        preprocess = _preprocess_of_tags(open_clip, model_name, pretrained_tag, cfg, user)
    else:
        cfg = copy.deepcopy(dict(model_cfg))
        if pretrained_tag is not None:
            raise ValueError(f'{user}: `pretrained_tag` needs `model_name` '
                             '(tags belong to named models)')
        if 'model_cfg' in cfg:  # open_clip_config.json layout
            preprocess = dict(cfg.get('preprocess_cfg') or {})
            cfg = copy.deepcopy(dict(cfg['model_cfg']))
    needed = {'visual': ('vision_cfg', ), 'text': ('text_cfg', )}.get(tower,
                                                                     ('vision_cfg', 'text_cfg'))
    missing = [k for k in ('embed_dim', ) + needed if k not in cfg]
    if missing:
        raise ValueError(f'{user}: model_cfg lacks the field(s) {missing}; it needs embed_dim, '
                         f'{" and ".join(needed)} (see open_clip/model_configs/*.json)')
    for key in ('vision_cfg', 'text_cfg'):
        if key in cfg:
            cfg[key] = dict(cfg[key])
    preprocess.setdefault('mean', _OPENAI_MEAN)
    preprocess.setdefault('std', _OPENAI_STD)
    return cfg, preprocess


def _preprocess_of_tags(open_clip: ModuleType, model_name: str, tag: Optional[str],
                        cfg: dict, user: str) -> dict:
    """mean/std of a pretrained tag, or the one all tags of the model agree on."""
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if tag is not None:
        if tag not in tags:
            raise ValueError(f'{user}: open_clip has no pretrained tag {tag!r} for {model_name}; '
                             f'known tags: {tags}')
        tag_cfg = open_clip.get_pretrained_cfg(model_name, tag)
        if tag_cfg.get('quick_gelu', False) != cfg.get('quick_gelu', False):
            # open_clip only warns too; the features then differ from the original model.
            warnings.warn(f'{user}: pretrained tag {tag!r} was trained with quick_gelu='
                          f'{tag_cfg.get("quick_gelu", False)} but model {model_name!r} has '
                          f'quick_gelu={cfg.get("quick_gelu", False)}; use the matching '
                          '"-quickgelu" model name')
        return {k: tag_cfg[k] for k in ('mean', 'std') if k in tag_cfg}
    stats = {(tuple(c.get('mean', _OPENAI_MEAN)), tuple(c.get('std', _OPENAI_STD)))
             for c in (open_clip.get_pretrained_cfg(model_name, t) for t in tags)}
    if len(stats) == 1:
        mean, std = stats.pop()
        return dict(mean=mean, std=std)
    return {}  # tags disagree (or none): open_clip's default


def is_custom_text(cfg: dict) -> bool:
    """Whether open_clip builds this config as ``CustomTextCLIP``/``CoCa``
    (text tower under ``text.``) instead of ``CLIP`` (text modules at top level)."""
    return bool(cfg.get('custom_text', False) or cfg['text_cfg'].get('hf_model_name')
                or 'multimodal_cfg' in cfg)


def build_tower(cfg: dict, tower: str, user: str) -> nn.Module:
    """Build open_clip's ``'visual'`` or ``'text'`` tower alone, in float32.

    open_clip's own model classes (CLIP, CustomTextCLIP, CoCa) build their
    towers with these two functions, so the tower and its keys are identical.
    Pretrained timm/HF base weights are never fetched: weights come from the
    wrapper's ``checkpoint``.
    """
    open_clip = import_open_clip(user)
    from open_clip.model import _build_text_tower, _build_vision_tower
    quick_gelu = bool(cfg.get('quick_gelu', False))
    if tower == 'visual':
        vision_cfg = dict(cfg['vision_cfg'])
        if vision_cfg.get('timm_model_name'):
            vision_cfg['timm_model_pretrained'] = False
        return _build_vision_tower(cfg['embed_dim'], vision_cfg, quick_gelu, cast_dtype=None)
    if tower == 'text':
        text_cfg = dict(cfg['text_cfg'])
        if text_cfg.get('hf_model_name'):
            text_cfg['hf_model_pretrained'] = False
        return _build_text_tower(cfg['embed_dim'], text_cfg, quick_gelu, cast_dtype=None)
    raise ValueError(f'{user}: tower must be "visual" or "text", got {tower!r} '
                     f'(open_clip {open_clip.__version__})')


def read_openclip_checkpoint(path: str, prefix: Optional[str], user: str) -> Dict[str, Tensor]:
    """Read an open_clip weights file into a flat state dict.

    Accepts a plain state dict (``.pt``/``.bin``/``.pth``/``.safetensors``),
    open_clip's training checkpoint (``{'state_dict': ...}`` with DDP's
    ``module.`` prefix) and mmengine checkpoints (unwrapped by
    :func:`~mmfusion.utils.unwrap_state_dict`). ``prefix`` keeps only the keys
    starting with it and strips it (``'image_encoder.'`` for an mmfusion
    model holding the wrapper under that name).
    """
    try:
        state_dict = load_state_dict_file(path)
    except RuntimeError as e:
        if 'TorchScript' in str(e):
            raise RuntimeError(f'{user}: {path} is a TorchScript archive (OpenAI\'s original '
                               '.pt); save torch.jit.load(path).state_dict() to a file and '
                               'load that') from e
        raise
    return select_prefix(state_dict, prefix, path, user)


def normalize_indices(indices: Sequence[int], num: int, what: str, user: str) -> List[int]:
    """Turn (possibly negative) block indices into non-negative ones."""
    if isinstance(indices, int):
        indices = [indices]
    out = []
    for i in indices:
        if not -num <= int(i) < num:
            raise ValueError(f'{user}: out_indices entry {i} is out of range for {num} {what}')
        out.append(int(i) % num)
    if not out:
        raise ValueError(f'{user}: out_indices is empty')
    return out


def take_in_order(features: List[Tensor], taken: List[int], wanted: List[int]) -> List[Tensor]:
    """Features come back in block order (``taken`` = sorted unique indices);
    return them in the order (and multiplicity) the user asked for."""
    return [features[taken.index(i)] for i in wanted]
