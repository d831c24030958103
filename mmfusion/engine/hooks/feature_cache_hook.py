from typing import Any, List, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmfusion.models.encoders.feature_cache import FeatureCache, encoder_fingerprint
from mmfusion.registry import HOOKS


def _random_transforms(cfg: Any) -> List[str]:
    """Types in a (nested) config whose name says they are random augmentations."""
    found = []
    if isinstance(cfg, dict):
        if isinstance(cfg.get('type'), str) and 'Random' in cfg['type']:
            found.append(cfg['type'])
        for value in cfg.values():
            found += _random_transforms(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            found += _random_transforms(value)
    return found


@HOOKS.register_module()
class FeatureCacheHook(Hook):
    """Cache the outputs of frozen encoders on disk, per sample.

    Before training, validation and testing, each encoder in ``encoders``
    (dotted submodule names of the model, e.g. ``'image_encoder'``) gets a
    :class:`FeatureCache` under ``cache_dir/<fingerprint>``. The fingerprint
    hashes the encoder's weights and buffers, its class, and the dataset and
    data-preprocessor configs of every dataloader, so changing the weights
    (e.g. ``load_from``) or the input pipeline starts a fresh cache.

    Only deterministic pipelines can be cached: a dataset config with a
    ``Random*`` transform is rejected, because its cached features would
    freeze one random draw. The architecture must call the encoder through
    ``forward_cached`` (``CLIPPretrainer``, ``FrozenFeatureClassifier`` do).
    """

    priority = 'LOW'

    def __init__(self, encoders: Sequence[str] = ('image_encoder', ),
                 cache_dir: str = 'work_dirs/feature_cache') -> None:
        self.encoders = list(encoders)
        self.cache_dir = cache_dir

    def _attach(self, runner: Runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        data_cfg = {split: runner.cfg.get(f'{split}_dataloader', {}).get('dataset')
                    for split in ('train', 'val', 'test')}
        random_ops = _random_transforms(data_cfg)
        if random_ops:
            raise ValueError(f'FeatureCacheHook: the dataset configs use random transforms '
                             f'{sorted(set(random_ops))}; cached features would freeze one random '
                             'draw. Remove them or the hook.')
        preprocessor_cfg = runner.cfg.get('model', {}).get('data_preprocessor')
        for name in self.encoders:
            try:
                encoder = model.get_submodule(name)
            except AttributeError as e:
                raise AttributeError(f'FeatureCacheHook: the model has no submodule {name!r}') from e
            fingerprint = encoder_fingerprint(
                encoder.cache_fingerprint_state(),
                extra=dict(encoder=type(encoder).__name__, data=data_cfg,
                           data_preprocessor=preprocessor_cfg))
            current = encoder.feature_cache
            if current is None or current.fingerprint != fingerprint:
                encoder.attach_feature_cache(FeatureCache(self.cache_dir, fingerprint))
                runner.logger.info(f'FeatureCacheHook: {name} caches its outputs in '
                                   f'{encoder.feature_cache.root}')

    def before_train(self, runner: Runner) -> None:
        self._attach(runner)

    def before_val(self, runner: Runner) -> None:
        self._attach(runner)

    def before_test(self, runner: Runner) -> None:
        self._attach(runner)
