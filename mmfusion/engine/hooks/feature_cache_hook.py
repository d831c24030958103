from typing import Any, List, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmfusion.models.encoders.feature_cache import FeatureCache, encoder_fingerprint
from mmfusion.registry import HOOKS

# Name fragments of the random augmentations of mmcv/mmdet/mmseg/mmpretrain.
_RANDOM_MARKERS = ('Random', 'RandAugment', 'AutoAugment', 'ColorJitter', 'PhotoMetricDistortion',
                   'Mixup', 'CutMix', 'Mosaic')


def _random_transforms(cfg: Any) -> List[str]:
    """Random augmentations in a (nested) config: known transform names and
    data-preprocessor ``batch_augments``."""
    found = []
    if isinstance(cfg, dict):
        kind = cfg.get('type')
        if isinstance(kind, str) and any(m in kind for m in _RANDOM_MARKERS):
            found.append(kind)
        if cfg.get('batch_augments'):
            found.append('batch_augments')
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
    hashes the encoder's weights and buffers, its class, the dataset configs
    of the train/val/test dataloaders and the model's data preprocessor, so
    changing the weights (e.g. ``load_from``) or the input pipeline starts a
    fresh cache.

    Only deterministic pipelines can be cached: random augmentations
    (``Random*``, ``RandAugment``, ``PhotoMetricDistortion``..., or
    ``batch_augments``) are rejected, because their cached features would
    freeze one random draw. Entries are keyed by each sample's ``sample_id``
    (else its ``img_path``), so one id must mean one input across splits. Only
    encoders whose outputs have a fixed per-sample shape can be cached (image
    encoders at a fixed input size; not padded audio or point batches). The architecture must call the encoder through
    ``forward_cached`` (``CLIPPretrainer``, ``FrozenFeatureClassifier`` do).
    """

    priority = 'LOW'

    def __init__(self, encoders: Sequence[str] = ('image_encoder', ),
                 cache_dir: str = 'work_dirs/feature_cache') -> None:
        self.encoders = list(encoders)
        self.cache_dir = cache_dir

    def _attach(self, runner: Runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        data_cfg = {split: (runner.cfg.get(f'{split}_dataloader') or {}).get('dataset')
                    for split in ('train', 'val', 'test')}
        random_ops = _random_transforms(data_cfg)
        preprocessor_cfg = (runner.cfg.get('model') or {}).get('data_preprocessor')
        random_ops += _random_transforms(preprocessor_cfg)
        if random_ops:
            raise ValueError(f'FeatureCacheHook: the dataset configs use random transforms '
                             f'{sorted(set(random_ops))}; cached features would freeze one random '
                             'draw. Remove them or the hook.')
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
