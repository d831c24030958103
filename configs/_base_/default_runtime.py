default_scope = 'mmfusion'

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo when no GPU is present.
    dist_cfg=dict(backend='nccl'))

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Checkpoints are written atomically (temp file + rename).
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=500,
        max_keep_ckpts=2,
        backend_args=dict(backend='mmfusion_atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Resume restores torch's RNG too, so it continues exactly.
    rng_state=dict(type='TorchRNGStateHook'),
    visualization=dict(type='FusionVisualizationHook'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='FusionVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False, window_size=50)
log_level = 'INFO'

load_from = None
resume = False
randomness = dict(seed=0)
