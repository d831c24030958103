"""One freezing mechanism for every encoder wrapper (see ``README.md`` beside this file)."""
import logging
import re
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

from mmfusion.utils.compile import HostSequence
from mmfusion.utils.dependency import require

from .feature_cache import FeatureCache, sample_ids_of, split_batch, stack_samples

_DTYPES = {'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16,
           'fp16': torch.float16, 'float16': torch.float16,
           'fp32': torch.float32, 'float32': torch.float32}


def _cast_floats(obj: Any, dtype: torch.dtype) -> Any:
    """Cast every floating tensor in a nested tuple/list/dict structure."""
    if torch.is_tensor(obj):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return type(obj)((k, _cast_floats(v, dtype)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast_floats(v, dtype) for v in obj)
    return obj


class BaseEncoder(BaseModule):
    """Base of every encoder wrapper.

    Subclasses build their modules (and load their checkpoint) in
    ``__init__``, then call :meth:`_apply_freeze` once at the end.

    Args:
        frozen: freeze the encoder. Frozen parameters have
            ``requires_grad=False`` (the optimizer constructor leaves them
            out, so they never change) and the encoder stays in eval mode when
            the runner calls ``model.train()`` (dropout off, norm statistics
            fixed).
        trainable_modules: regular expressions over submodule names (as in
            ``named_modules()``) that stay trainable in a frozen encoder, e.g.
            ``[r'.*blocks\\.11']`` to tune the last ViT block. These modules
            also follow ``train()``/``eval()``.
        lora: LoRA through peft on named modules, e.g.
            ``dict(target_modules=['qkv'], r=4, alpha=8)``; only the LoRA
            matrices are trainable. Implies a frozen base.
        frozen_dtype: ``'bf16'``/``'fp16'`` casts a fully frozen encoder once
            to that dtype; inputs are cast to it and floating outputs back to
            float32, so the decoder sees float32.
        init_cfg: mmengine init config.

    Frozen encoders may also cache their outputs on disk (see
    :class:`FeatureCache` and ``FeatureCacheHook``): call
    :meth:`forward_cached` with per-sample ids instead of ``forward``.
    """

    def __init__(self,
                 frozen: bool = True,
                 trainable_modules: Sequence[str] = (),
                 lora: Optional[dict] = None,
                 frozen_dtype: Optional[str] = None,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if frozen_dtype is not None and frozen_dtype not in _DTYPES:
            raise ValueError(f'frozen_dtype must be one of {sorted(_DTYPES)}, got {frozen_dtype!r}')
        if frozen_dtype is not None and (not frozen or trainable_modules or lora):
            raise ValueError('frozen_dtype casts the whole encoder, so it needs frozen=True and '
                             'no trainable_modules or lora')
        self.frozen = bool(frozen or lora)
        self.trainable_modules = list(trainable_modules)
        self.lora = dict(lora) if lora else None
        self.frozen_dtype = _DTYPES[frozen_dtype] if frozen_dtype else None
        self.feature_cache: Optional[FeatureCache] = None
        self._warned_no_ids = False

    # -- freezing ---------------------------------------------------------
    def _apply_freeze(self) -> None:
        """Freeze, open the trainable modules, inject LoRA, cast; in this order."""
        if not self.frozen:
            return
        for param in self.parameters():
            param.requires_grad_(False)
        self._trainable_names = self._match_modules(self.trainable_modules)
        for name in self._trainable_names:
            for param in self.get_submodule(name).parameters():
                param.requires_grad_(True)
        if self.lora:
            self._inject_lora(self.lora)
        self._lora_dropout_names = self._find_lora_dropouts()
        if self.frozen_dtype is not None:
            self.to(self.frozen_dtype)
            self.register_forward_pre_hook(self._cast_inputs_hook, with_kwargs=True)
            self.register_forward_hook(self._cast_outputs_hook)
        self.train(False)

    def _match_modules(self, patterns: Sequence[str]) -> list:
        names = [n for n, _ in self.named_modules() if n]
        matched = []
        for pattern in patterns:
            hits = [n for n in names if re.fullmatch(pattern, n)]
            if not hits:
                raise ValueError(f'{type(self).__name__}: no submodule name matches '
                                 f'trainable_modules pattern {pattern!r}; some names: {names[:8]}')
            matched += [n for n in hits if n not in matched]
        # A matched module's children are covered by the parent.
        return [n for n in matched if not any(n.startswith(m + '.') for m in matched)]

    def _inject_lora(self, cfg: dict) -> None:
        peft = require('peft', f'{type(self).__name__}(lora=...)')
        cfg = dict(cfg)
        target_modules = cfg.pop('target_modules')
        config = peft.LoraConfig(target_modules=target_modules,
                                 r=cfg.pop('r', 4), lora_alpha=cfg.pop('alpha', 8),
                                 lora_dropout=cfg.pop('dropout', 0.0), **cfg)
        try:
            peft.inject_adapter_in_model(config, self)
        except ValueError as e:  # peft names the missing targets
            raise ValueError(f'{type(self).__name__}: LoRA target_modules {target_modules} '
                             f'do not match this encoder: {e}') from e

    def _find_lora_dropouts(self) -> list:
        return [name for name, _ in self.named_modules() if name.endswith('lora_dropout')]

    def train(self, mode: bool = True) -> 'BaseEncoder':
        super().train(mode and not self.frozen)
        if mode and self.frozen:
            for name in getattr(self, '_trainable_names', []):
                self.get_submodule(name).train(True)
            # LoRA's own dropout is part of what trains (peft's ``lora_dropout``);
            # the frozen base layers around it stay in eval mode. Listed once
            # (in _apply_freeze, where LoRA is injected): the runner calls
            # train() before every iteration, and re-listing every submodule
            # there cost ~0.1 ms a call (a quarter of the tiny KL-VAE's train()).
            names = getattr(self, '_lora_dropout_names', None)
            if names is None:
                names = self._lora_dropout_names = self._find_lora_dropouts()
            for name in names:
                self.get_submodule(name).train(True)
        return self

    # -- low dtype ---------------------------------------------------------
    def _cast_inputs_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple:
        return _cast_floats(args, self.frozen_dtype), _cast_floats(kwargs, self.frozen_dtype)

    @staticmethod
    def _cast_outputs_hook(module: nn.Module, args: tuple, output: Any) -> Any:
        return _cast_floats(output, torch.float32)

    # -- feature cache -----------------------------------------------------
    def attach_feature_cache(self, cache: Optional[FeatureCache]) -> None:
        """Use ``cache`` in :meth:`forward_cached` (``None`` detaches)."""
        if cache is not None and any(p.requires_grad for p in self.parameters()):
            raise ValueError(f'{type(self).__name__} has trainable parameters; only a fully '
                             'frozen encoder may cache its outputs')
        self.feature_cache = cache

    def cache_ids(self, data_samples: Optional[Sequence[Any]]) -> Optional[List[str]]:
        """The batch's cache keys (:func:`sample_ids_of`) for
        :meth:`forward_cached`; ``None`` without an attached cache, so that
        nothing is read (a compiled model then holds no per-batch strings)."""
        if self.feature_cache is None:
            return None
        ids = sample_ids_of(data_samples)
        # opaque to torch.compile (a list of strings would be guarded, a recompile every batch)
        return None if ids is None else HostSequence(ids)

    def forward_cached(self, inputs: Any, sample_ids: Optional[Sequence[str]] = None,
                       keys: Optional[Sequence[str]] = None) -> Any:
        """``forward(inputs)``, served from the feature cache when one is attached.

        The batch's outputs are read from disk when every sample is cached;
        otherwise the batch is encoded and each sample's outputs are written.
        ``sample_ids`` must identify the sample (e.g. its file path), so the
        cache is independent of batch composition, shuffling and workers.
        ``keys`` keeps only those entries of a dict output (less to store and
        read when the caller needs e.g. only ``'pooled'``).
        """
        if self.feature_cache is None:
            return self._select(self(inputs), keys)
        return self._forward_through_cache(inputs, sample_ids, keys)

    # torch.compile: excluded, per-sample file reads and writes keyed by id strings.
    @torch.compiler.disable
    def _forward_through_cache(self, inputs: Any, sample_ids: Optional[Sequence[str]],
                               keys: Optional[Sequence[str]]) -> Any:
        cache = self.feature_cache
        if sample_ids is None:
            if not self._warned_no_ids:
                print_log(f'{type(self).__name__}: a feature cache is attached but the batch has '
                          'no sample ids (metainfo "sample_id" or "img_path"); encoding without it',
                          logger='current', level=logging.WARNING)
                self._warned_no_ids = True
            return self._select(self(inputs), keys)
        if keys is not None:  # a subset is a different entry than the full output
            sample_ids = [f'{i}|{",".join(keys)}' for i in sample_ids]
        hits = [cache.get(i) for i in sample_ids]
        if all(h is not None for h in hits):
            return stack_samples(hits, next(self.parameters()).device)
        with torch.no_grad():
            outputs = self._select(self(inputs), keys)
        for sample_id, sample_out in zip(sample_ids, split_batch(outputs, len(sample_ids))):
            cache.put(sample_id, sample_out)
        return outputs

    def _select(self, outputs: Any, keys: Optional[Sequence[str]]) -> Any:
        if keys is None:
            return outputs
        missing = [k for k in keys if k not in outputs]
        if missing:
            raise KeyError(f'{type(self).__name__} outputs have no {missing}; '
                           f'they have {sorted(outputs)}')
        return {k: outputs[k] for k in keys}

    def cache_fingerprint_state(self) -> Dict[str, torch.Tensor]:
        """Tensors that define the encoder's outputs (weights and buffers)."""
        return self.state_dict()
