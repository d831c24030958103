# Linear probe on the frozen tiny CLIP image encoder (trained by
# clip_vit-tiny_1xb128-1k_synthshapes.py): the frozen-encoder setting of the
# feature-cache benchmark. The pipeline is deterministic, so the encoder's
# outputs are cached on disk after the first epoch (FeatureCacheHook).
_base_ = [
    '../_base_/models/clip_vit-tiny.py',
    '../_base_/datasets/synthshapes_crops.py',
    '../_base_/default_runtime.py',
]
clip_ckpt = 'work_dirs/clip_vit-tiny_1xb128-1k_synthshapes/iter_1000.pth'
model = dict(
    _delete_=True,
    type='FrozenFeatureClassifier',
    data_preprocessor={{_base_.model.data_preprocessor}},
    encoder=dict(type='OpenCLIPImageEncoder', model_cfg={{_base_.clip_cfg}},
                 checkpoint=clip_ckpt, prefix='image_encoder.', frozen=True),
    in_channels={{_base_.clip_cfg.embed_dim}},
    num_classes=30)  # the colour-shape classes of SynthShapes
train_dataloader = dict(
    batch_size=64,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(pipeline={{_base_.test_pipeline}}))
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='FusionOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.0))
param_scheduler = []
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(prefix='probe')
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=2),
                     logger=dict(interval=20, log_metric_by_epoch=True))
log_processor = dict(by_epoch=True)
custom_hooks = [dict(type='FeatureCacheHook', encoders=['encoder'],
                     cache_dir='work_dirs/feature_cache')]
