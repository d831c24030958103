"""Model wrappers for distributed training."""
from typing import List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import MMFullyShardedDataParallel

from mmfusion.registry import MODEL_WRAPPERS


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
        super().__init__(module, device_id=device_id, ignored_states=ignored_states, **kwargs)
