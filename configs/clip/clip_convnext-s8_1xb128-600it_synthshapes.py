# Tiny ConvNeXt CLIP pretrained from scratch on SynthShapes region-text pairs,
# as clip_vit-tiny_1xb128-1k_synthshapes.py, for FrozenSeg: its final map
# classifies every location (mask pooling + the CLIP head), which the tiny
# ViT's class-token embedding does not.
_base_ = [
    '../_base_/models/clip_convnext-s8.py',
    '../_base_/datasets/synthshapes_crops.py',
    '../_base_/schedules/adamw_cosine_2k.py',
    '../_base_/default_runtime.py',
]
model = dict(classes={{_base_.classes}})
# Region-text pairs of every panoptic segment: the shapes and, unlike the ViT
# recipe, the backgrounds ("a photo of a striped background."), whose crop is
# the whole scene. A segmentation backbone must know its stuff classes too.
train_dataloader = dict(dataset=dict(format='coco_panoptic',
                                     ann_file='annotations/panoptic_train.json'))
max_iters = 600
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=300)
default_hooks = dict(checkpoint=dict(interval=300))
auto_scale_lr = dict(base_batch_size=128)
