# The 2D teacher: a tiny CLIP trained from scratch on depth views of SynthShapes3D's
# seen classes with their captions (no CLIP weights can be downloaded here), with CLIP's
# bag-of-words text tower plus learned positions. One random view of 1024 points per cloud,
# rendered exactly as I2P-MAE's teacher renders them.
# Validation: zero-shot classification of the test clouds' side view among all 18 names.
_base_ = [
    '../_base_/models/clip_vit-tiny-depth.py',
    '../_base_/datasets/synthshapes3d.py',
    '../_base_/schedules/adamw_cosine_600it.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='CLIPPretrainer',
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean={{_base_.view_mean_255}},
                 std={{_base_.view_std_255}})),
    image_encoder=dict(type='OpenCLIPImageEncoder', model_cfg={{_base_.clip_cfg}}, frozen=False),
    text_encoder={{_base_.text_tower}},
    test_templates='synthshapes3d',
    classes={{_base_.classes}})
_view = dict(type='PointsToDepthImage', image_size={{_base_.view_size}},
             kernel={{_base_.view_kernel}}, num_points={{_base_.num_points}})
train_dataloader = dict(
    batch_size=96,
    dataset=dict(pipeline=[
        dict(type='LoadPointsFromFile', use_dims=[0, 1, 2]),
        dict(_view, view='random'),
        dict(type='SampleCaption'),
        dict(type='PackFusionInputs'),
    ]))
val_dataloader = dict(
    batch_size=128,
    dataset=dict(pipeline=[
        dict(type='LoadPointsFromFile', use_dims=[0, 1, 2]),
        dict(_view, view=1),
        dict(type='PackFusionInputs'),
    ]))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabAccuracy', topk=(1, 5), novel_classes={{_base_.held_out}})
test_evaluator = val_evaluator
max_iters = 400
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters), logger=dict(interval=20))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
