# A second depth-view teacher for the zero-shot recipe: the tiny ConvNeXt CLIP tower
# (configs/clip/clip_convnext-s8_1xb128-600it_synthshapes.py), which generalised to unseen
# colour-shape combinations far better than the tiny ViT on SynthShapes, on 32x32 depth
# views (its patch-1 stem makes 64x64 four times as costly), with the same captions.
_base_ = ['./clip_vit-tiny-depth_1xb96-400it_synthshapes3d.py']
clip_cfg = dict(
    embed_dim=64,
    vision_cfg=dict(timm_model_name='convnext_synth_s8', timm_model_pretrained=False,
                    timm_pool='', timm_proj='linear', image_size=32),
    text_cfg=dict(context_length=20, width=128, heads=4, layers=3, mlp_ratio=2.0))
# Measured with the 3-layer text transformer (before the ViT teacher moved to bag-of-words).
model = dict(image_encoder=dict(model_cfg=clip_cfg),
             text_encoder=dict(_delete_=True, type='OpenCLIPTextEncoder', model_cfg=clip_cfg,
                               frozen=False))
_view = dict(type='PointsToDepthImage', image_size=32, kernel=3, num_points=1024)
train_dataloader = dict(
    batch_size=128,
    dataset=dict(pipeline=[
        dict(type='LoadPointsFromFile', use_dims=[0, 1, 2]),
        dict(_view, view='random'),
        dict(type='SampleCaption'),
        dict(type='PackFusionInputs'),
    ]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadPointsFromFile', use_dims=[0, 1, 2]),
    dict(_view, view=1),
    dict(type='PackFusionInputs'),
]))
test_dataloader = val_dataloader
max_iters = 600
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
