"""Config surgery shared by the benchmark and check scripts."""
from mmengine.config import Config


def training_only(cfg: Config, max_iters: int, log_interval: int = 50) -> Config:
    """``cfg`` reduced to ``max_iters`` iterations of training: no validation
    or test loop, no checkpoint saving, no visualisation, an iteration-based
    loop and log. Returns ``cfg`` (changed in place)."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                         val_interval=max_iters + 1)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.pop('visualization', None)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=log_interval)
    cfg.log_processor = dict(by_epoch=False)
    cfg.visualizer.vis_backends = []
    return cfg
