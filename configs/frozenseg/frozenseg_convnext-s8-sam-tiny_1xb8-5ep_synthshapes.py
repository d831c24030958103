# Tiny FrozenSeg on SynthShapes (96 x 96 scenes), trained on the seen classes
# only: frozen tiny ConvNeXt CLIP + frozen tiny SAM (both from this project's
# recipes), trainable pixel decoder and decoder; CLIP's mask-pooled scores
# ensembled in at inference (alpha 0.4 seen, beta 0.8 held-out).
#
# Needs: make clip-convnext (configs/clip/clip_convnext-s8_1xb128-600it_synthshapes.py)
# and make sam (configs/sam/sam_vit-tiny_1xb8-2600it_synthshapes.py).
_base_ = [
    '../_base_/models/frozenseg_tiny.py',
    '../_base_/datasets/synthshapes_panoptic.py',
    '../_base_/default_runtime.py',
]
model = dict(classes={{_base_.classes}}, thing_classes={{_base_.thing_classes}},
             # the classifier in training: the 27 seen classes (the dataset's label
             # space also names the 6 held-out combinations)
             train_classes={{_base_.seen_classes}})

# The frozen towers' outputs are cached on disk in the first epoch (no random
# augmentation: a cached feature must be the same input every epoch).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations', box_type='hbox'),
    dict(type='PackFusionInputs'),
]
train_dataloader = dict(batch_size=8, num_workers=1,
                        sampler=dict(type='DefaultSampler', shuffle=True),
                        dataset=dict(pipeline=train_pipeline))
custom_hooks = [dict(type='FeatureCacheHook', encoders=['clip_encoder', 'sam_encoder'],
                     cache_dir='work_dirs/feature_cache')]

max_epochs = 5
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='FusionOptimWrapperConstructor',
    # FrozenSeg: AdamW, weight decay 0.05, full-model gradient clip 0.01 (the
    # official value; see the README for the rate and clip used here).
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=8)
