"""The base of every mmfusion Inferencer: one task kind behind mmengine's
:class:`~mmengine.infer.BaseInferencer` call protocol.

``inferencer(inputs, batch_size=..., out_dir=..., **task_kwargs)`` returns
``dict(predictions=[...], visualization=[...])``: one JSON-serialisable dict
per input (``return_datasamples=True``: the model's data samples instead) and
one drawing per input (an RGB array, or a waveform for speech output). With
``out_dir`` each input's prediction is written to ``out_dir/preds/NAME.json``
and its drawing to ``out_dir/vis/NAME.png`` (``.wav`` for audio).

A subclass names its task kind, the model classes it accepts, the kwargs its
stages take (mmengine's ``preprocess_kwargs`` ... sets), and implements
``preprocess`` (when the default image pipeline does not fit), ``pred_to_dict``
and ``visualize_one``.

mmengine's ``BaseInferencer.__init__`` resolves names through MIM's metafile
layout and builds models through the default scope's registry; mmfusion's
model index and ``init_model`` (unknown types explained, checkpoints' dataset
meta kept) replace those two steps, the rest of the protocol is mmengine's.
"""
import copy
import json
import os
import os.path as osp
import warnings
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log
from torch import nn

from mmfusion.registry import VISUALIZERS
from mmfusion.utils.compile import compile_inference
from mmfusion.utils.config_weights import drop_weight_files

from .inference import build_test_pipeline, init_model, load_image, load_weights, prepare_inputs

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
ModelSpec = Union[str, Path, Config, nn.Module]


def mask_to_rle(mask: np.ndarray) -> dict:
    """A binary ``(H, W)`` mask as COCO RLE (``counts`` as a str, JSON-ready)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def _is_skimage(item: Any) -> bool:
    return isinstance(item, str) and item.startswith('skimage:')


def to_numpy(value: Any) -> Any:
    """Tensors to numpy arrays, anything else as is."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def resolve_model(model: ModelSpec, weights: Union[str, bool, None], device: str,
                  cfg_options: Optional[dict] = None) -> Tuple[nn.Module, Optional[Config]]:
    """Build (or take) the model an Inferencer runs.

    ``model`` is a model-index name (``mmfusion.apis.list_models()``), a config
    path or :class:`Config`, or a built model. ``weights`` is a checkpoint
    path; ``None`` means the index entry's weights for a name (an error naming
    the make target when they are not on this machine) and random weights for
    a config (with a warning); ``False`` means random weights, said nowhere.
    """
    if isinstance(model, nn.Module):
        if cfg_options:
            raise ValueError('cfg_options only apply when the model is given as a config or name')
        load_weights(model, weights or None)
        return model.to(device).eval(), getattr(model, 'cfg', None)
    if isinstance(model, (str, Path)) and not osp.isfile(str(model)):
        from .model_index import get_model, list_models
        name = str(model)
        if name.endswith('.py'):
            raise FileNotFoundError(f'config file not found: {name}')
        if name not in list_models():
            from .model_index import model_info
            model_info(name)  # raises KeyError with the closest names
        built = get_model(name, pretrained=True if weights is None else weights,
                          device=device, cfg_options=cfg_options)
        return built, built.cfg
    if weights is None:
        print_log(f'no weights given for {model if not isinstance(model, Config) else "config"}:'
                  ' the model keeps its random initialisation', logger='current', level=30)
    cfg = copy.deepcopy(model) if isinstance(model, Config) else Config.fromfile(str(model))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' in cfg:
        # Weight files the config names for its parts (pre-trained towers, a
        # SAM or CLIP) that this machine lacks: a trained checkpoint holds them.
        dropped = drop_weight_files(cfg.model, only_missing=True)
        if dropped:
            warnings.warn('weight files of the config not found, skipped (a trained checkpoint '
                          f'holds all weights): {"; ".join(dropped)}', stacklevel=3)
    built = init_model(cfg, weights or None, device=device)
    return built, built.cfg


class FusionInferencer(BaseInferencer):
    """An Inferencer over one task kind (see the module docstring).

    Args:
        model: model-index name, config path / :class:`Config`, or a built model.
        weights: checkpoint path; ``None``: the index's weights for a name,
            random for a config; ``False``: random weights.
        device: e.g. ``'cpu'``, ``'cuda:0'``.
        cfg_options: config overrides (names and configs only).
        show_progress: a progress bar over batches.
        compile: ``torch.compile`` the model's inference entry points
            (``test_step``, ``predict``) in place: ``True`` or a dict of
            ``torch.compile`` options (``backend``, ``mode``...). The first
            call of each input shape compiles (minutes on CPU).
    """
    #: what the inferencer does, for messages and the web demo
    task_kind: str = ''
    #: class names (``type(model).__name__``) the inferencer runs; empty: any
    model_types: Tuple[str, ...] = ()
    #: file suffixes a folder input is expanded to
    input_suffixes: Tuple[str, ...] = IMAGE_SUFFIXES
    #: suffix of the files ``out_dir/vis/`` gets
    vis_suffix: str = '.png'

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'return_vis'}
    postprocess_kwargs: set = {'out_dir'}

    def __init__(self,
                 model: ModelSpec,
                 weights: Union[str, bool, None] = None,
                 device: str = 'cpu',
                 cfg_options: Optional[dict] = None,
                 show_progress: bool = True,
                 compile: Union[bool, dict] = False) -> None:
        self.model, self.cfg = resolve_model(model, weights, device, cfg_options)
        if self.model_types and type(self.model).__name__ not in self.model_types:
            raise TypeError(f'{type(self).__name__} ({self.task_kind}) runs '
                            f'{" / ".join(self.model_types)} models, got '
                            f'{type(self.model).__name__}')
        if compile:
            compile_inference(self.model, compile)
        self.scope = 'mmfusion'
        self.device = device
        self.show_progress = show_progress
        self.pipeline = self._init_pipeline(self.cfg)
        self.collate_fn = pseudo_collate
        self.visualizer = None
        self._drawer = None

    def drawer(self, alpha: Optional[float] = None):
        """The inferencer's own :class:`FusionVisualizer`, built on first use
        (``alpha``: set its mask opacity)."""
        if self._drawer is None:
            self._drawer = VISUALIZERS.build(
                dict(type='FusionVisualizer', name=f'{type(self).__name__}-{id(self)}'))
            self._drawer.dataset_meta = getattr(self.model, 'dataset_meta', None) or {}
        if alpha is not None:
            if not 0 <= alpha <= 1:
                raise ValueError(f'alpha (mask opacity) must be in [0, 1], got {alpha}')
            self._drawer.alpha = alpha
        return self._drawer

    # -- stages ------------------------------------------------------------
    def _init_pipeline(self, cfg: Optional[Config]):
        """The config's test pipeline without annotation loaders."""
        return build_test_pipeline(cfg)

    def _inputs_to_list(self, inputs: Any) -> list:
        """One input or a list; a folder is its files with ``input_suffixes``
        (sorted); ``skimage:NAME`` is an image bundled with scikit-image."""
        if isinstance(inputs, (str, Path)) and osp.isdir(str(inputs)):
            folder = str(inputs)
            found = sorted(osp.join(folder, f) for f in os.listdir(folder)
                           if f.lower().endswith(self.input_suffixes))
            if not found:
                raise FileNotFoundError(f'{folder} holds no {"/".join(self.input_suffixes)} '
                                        'files')
            return found
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if not inputs:
            raise ValueError('no inputs given')
        return [load_image(x) if _is_skimage(x) else x for x in inputs]

    def _check_path(self, item: Any) -> None:
        if isinstance(item, (str, Path)) and not osp.isfile(str(item)):
            raise FileNotFoundError(f'input file not found: {item}')

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs) -> Iterable:
        """Images through the test pipeline, ``batch_size`` per batch
        (each item: a collated ``{'inputs', 'data_samples'}`` batch)."""
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        for item in inputs:
            self._check_path(item)
        for start in range(0, len(inputs), batch_size):
            chunk = prepare_inputs(inputs[start:start + batch_size], self.pipeline)
            yield self.collate_fn(chunk)

    @torch.no_grad()
    def forward(self, inputs: Any, **kwargs) -> list:
        return self.model.test_step(inputs)

    def visualize(self, inputs: list, preds: list, return_vis: bool = True,
                  **kwargs) -> Optional[list]:
        if not return_vis:
            return None
        return [self.visualize_one(inp, pred, **kwargs) for inp, pred in zip(inputs, preds)]

    def visualize_one(self, inp: Any, pred: Any, **kwargs) -> Any:
        """The drawing of one prediction (RGB ``uint8`` array, or audio)."""
        raise NotImplementedError(f'{type(self).__name__} draws nothing')

    def pred_to_dict(self, pred: Any) -> dict:
        """One prediction as a JSON-serialisable dict."""
        raise NotImplementedError

    def postprocess(self, preds: list, visualization: Optional[list],
                    return_datasamples: bool = False, out_dir: Optional[str] = None,
                    **kwargs) -> dict:
        dicts = [self.pred_to_dict(p) for p in preds]
        if out_dir is not None:
            self.write_outputs(out_dir, dicts, visualization)
        return dict(predictions=preds if return_datasamples else dicts,
                    visualization=visualization)

    def __call__(self, inputs: Any, return_datasamples: bool = False, batch_size: int = 1,
                 **kwargs) -> dict:
        self._names = None
        if isinstance(inputs, (list, tuple)) or _is_skimage(inputs):
            self._names = self.input_names(inputs if isinstance(inputs, (list, tuple))
                                           else [inputs])
        ori = self._inputs_to_list(inputs)
        if self._names is None:
            self._names = self.input_names(ori)
        return super().__call__(ori, return_datasamples=return_datasamples,
                                batch_size=batch_size, **kwargs)

    # -- outputs -----------------------------------------------------------
    @staticmethod
    def input_names(inputs: Sequence) -> List[str]:
        """File stems for path inputs, NAME for ``skimage:NAME``, ``00000``... for
        the others; repeats get a suffix."""
        names, seen = [], {}
        for i, item in enumerate(inputs):
            if _is_skimage(item):
                name = item.split(':', 1)[1]
            elif isinstance(item, (str, Path)):
                name = Path(str(item)).stem
            else:
                name = f'{i:05d}'
            seen[name] = seen.get(name, 0) + 1
            names.append(name if seen[name] == 1 else f'{name}_{seen[name] - 1}')
        return names

    def write_outputs(self, out_dir: str, dicts: List[dict],
                      visualization: Optional[list]) -> None:
        names = self._names or self.input_names(range(len(dicts)))
        os.makedirs(osp.join(out_dir, 'preds'), exist_ok=True)
        for name, d in zip(names, dicts):
            with open(osp.join(out_dir, 'preds', f'{name}.json'), 'w') as f:
                json.dump(d, f, indent=1)
        if visualization:
            os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
            for name, vis in zip(names, visualization):
                if vis is not None:
                    self.save_visualization(vis, osp.join(out_dir, 'vis', name + self.vis_suffix))

    def save_visualization(self, vis: Any, path: str) -> None:
        """Write one drawing (RGB array -> PNG); audio inferencers override."""
        mmcv.imwrite(mmcv.rgb2bgr(np.asarray(vis)), path)


def read_rgb(image: Any) -> np.ndarray:
    """An image path or BGR/gray array as an RGB ``uint8`` array (for drawing)."""
    if isinstance(image, (str, Path)):
        return mmcv.imread(str(image), channel_order='rgb')
    image = np.asarray(image)
    return np.ascontiguousarray(mmcv.gray2rgb(image) if image.ndim == 2 else mmcv.bgr2rgb(image))
