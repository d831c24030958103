import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from mmfusion.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class FusionOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, minus frozen parameters.

    mmengine hands parameters with ``requires_grad=False`` to the optimizer
    too; with a frozen foundation model that is most of the model. Here the
    optimizer holds exactly the trainable parameters, with or without
    ``paramwise_cfg``.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if self.paramwise_cfg:
            return super().__call__(model)  # goes through add_params below
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(f'{type(model).__name__} has no trainable parameters to optimize')
        optimizer = OPTIMIZERS.build({**self.optimizer_cfg, 'params': trainable})
        wrapper_cfg = self.optim_wrapper_cfg.copy()
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))

    def add_params(self, params, module: nn.Module, prefix: str = '', is_dcn_module=None) -> None:
        start = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix == '':  # the outermost call sees every group of the model
            params[start:] = [g for g in params[start:] if g['params'][0].requires_grad]
