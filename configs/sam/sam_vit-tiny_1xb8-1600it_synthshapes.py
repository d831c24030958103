# Pre-train a tiny SAM from scratch on SynthShapes with SAM's simulated
# interactive training (paper appendix A; configs/sam/README.md).
_base_ = [
    '../_base_/models/sam_tiny.py',
    '../_base_/datasets/synthshapes_promptable.py',
    '../_base_/default_runtime.py',
]
model = dict(
    # The paper's recipe: first prompt from the pipeline, 8 corrective points,
    # 2 mask-only iterations; focal 20 : dice 1, IoU-prediction MSE.
    train_cfg=dict(num_points=8, num_mask_only=2, focal_weight=20.0, dice_weight=1.0,
                   iou_weight=1.0))

max_iters = 1600
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='FusionOptimWrapperConstructor',
    # SAM: AdamW (0.9, 0.999), weight decay 0.1, linear warm-up, step decay.
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.1),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=150),
    dict(type='MultiStepLR', by_epoch=False, milestones=[1300, 1500], gamma=0.1),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=800)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=800))
auto_scale_lr = dict(enable=False, base_batch_size=8)
