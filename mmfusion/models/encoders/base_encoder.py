from typing import Optional

from mmengine.model import BaseModule


class BaseEncoder(BaseModule):
    """Base of every encoder wrapper: one freezing mechanism for all of them.

    A frozen encoder has ``requires_grad=False`` on every parameter (so the
    optimizer constructor leaves them out), and stays in eval mode when the
    runner calls ``model.train()`` (dropout off, norm statistics fixed).
    Subclasses build their modules, then call :meth:`_apply_freeze`.
    """

    def __init__(self, frozen: bool = True, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.frozen = frozen

    def _apply_freeze(self) -> None:
        if self.frozen:
            for param in self.parameters():
                param.requires_grad_(False)
            self.train(False)

    def train(self, mode: bool = True) -> 'BaseEncoder':
        return super().train(mode and not self.frozen)
