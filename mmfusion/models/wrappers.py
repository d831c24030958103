"""Model wrappers for distributed training."""
from typing import List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import MMFullyShardedDataParallel
from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy

from mmfusion.registry import FUNCTIONS, MODEL_WRAPPERS

# For configs: model_wrapper=dict(type='FusionFSDP', auto_wrap_policy=dict(
#     type='size_based_auto_wrap_policy', min_num_params=int(1e7))).
FUNCTIONS.register_module(module=size_based_auto_wrap_policy)


def frozen_submodules(module: nn.Module) -> List[nn.Module]:
    """The largest submodules of ``module`` whose parameters are all frozen.

    A frozen encoder inside a trainable model is returned as one module (not
    its layers); modules without parameters are skipped.
    """
    found = []
    for child in module.children():
        params = list(child.parameters())
        if not params:
            continue
        if not any(p.requires_grad for p in params):
            found.append(child)
        else:
            found.extend(frozen_submodules(child))
    return found


@MODEL_WRAPPERS.register_module()
class FusionFSDP(MMFullyShardedDataParallel):
    """mmengine's FSDP wrapper, usable on CPU and with frozen encoders.

    Select it with ``strategy=dict(type='FSDPStrategy',
    model_wrapper=dict(type='FusionFSDP', ...))`` under ``FlexibleRunner``.

    Two things mmengine's wrapper leaves to the user:

    * **CPU.** torch's FSDP refuses ``device_id=None`` without an accelerator;
      with ``device_id=torch.device('cpu')`` it shards over gloo. mmengine's
      ``FSDPStrategy`` always passes ``LOCAL_RANK`` as a CUDA index, so
      without CUDA the index is replaced by the CPU device here.
    * **Frozen modules.** FSDP flattens the parameters of each wrapped unit
      into one ``FlatParameter``, which must have one dtype. A frozen encoder
      cast to bf16 (``frozen_dtype``) next to fp32 trainable layers cannot
      share a unit, and sharding a module that never changes only adds
      communication. Fully frozen submodules (:func:`frozen_submodules`) are
      therefore passed as ``ignored_states``: each rank keeps its own full
      copy, untouched by the optimizer. Set ``ignore_frozen=False``, or give
      ``ignored_states`` yourself, to decide otherwise.

    And one correction: mmengine's optim wrappers clip with
    ``torch.nn.utils.clip_grad_norm_`` over the optimizer's parameters, which
    under FSDP are this rank's shards, so each rank would clip by the norm
    of its own shard. Norm clipping is routed to FSDP's own
    ``clip_grad_norm_``, which reduces the norm over all ranks.

    Args:
        module (nn.Module): The model.
        device_id (int | torch.device, optional): CUDA device; ignored (CPU)
            when no GPU is present.
        ignore_frozen (bool): Ignore fully frozen submodules. Defaults to True.
        ignored_states (list, optional): Modules or parameters to leave
            unsharded; overrides ``ignore_frozen``.
        **kwargs: :class:`mmengine.model.MMFullyShardedDataParallel` options
            (``sharding_strategy``, ``auto_wrap_policy``, ``mixed_precision``,
            ``use_orig_params``...).
    """

    def __init__(self,
                 module: nn.Module,
                 device_id: Optional[Union[int, torch.device]] = None,
                 ignore_frozen: bool = True,
                 ignored_states: Optional[list] = None,
                 **kwargs) -> None:
        if not torch.cuda.is_available():
            device_id = torch.device('cpu')
        if ignored_states is None and ignore_frozen:
            ignored_states = frozen_submodules(module) or None
        if torch.cuda.is_available() and device_id is not None:
            # FSDP moves only what it manages; mmengine's strategy leaves the
            # model where it was built. Ignored modules follow by hand.
            device = device_id if isinstance(device_id, torch.device) else \
                torch.device('cuda', device_id)
            for state in ignored_states or []:
                state.to(device)
        super().__init__(module, device_id=device_id, ignored_states=ignored_states, **kwargs)

    def train_step(self, data: dict, optim_wrapper) -> dict:
        if getattr(optim_wrapper, 'clip_func', None) is torch.nn.utils.clip_grad_norm_:
            optim_wrapper.clip_func = self._clip_global_norm
        return super().train_step(data, optim_wrapper)

    def _clip_global_norm(self, params, max_norm: float, norm_type: float = 2.0, **kwargs):
        if kwargs:
            raise ValueError(f'FusionFSDP clips with FSDP.clip_grad_norm_(max_norm, norm_type); '
                             f'clip_grad options {sorted(kwargs)} are not supported')
        return self.clip_grad_norm_(max_norm, norm_type)
