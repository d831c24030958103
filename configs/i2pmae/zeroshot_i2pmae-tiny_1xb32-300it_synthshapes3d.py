# Zero-shot 3D classification, ULIP-style: the tiny I2P-MAE encoder (from its pre-training
# checkpoint) plus a linear projection is aligned to the frozen tiny depth-view CLIP: its
# text tower's embedding of each cloud's caption and its image tower's embedding of the
# cloud's three depth views (averaged). Then clouds are classified by the 18 class names
# in the 8 SynthShapes3D prompts; the 4 held-out classes were never seen by the point
# encoder, its pre-training or the CLIP.
_base_ = [
    '../_base_/models/i2pmae_tiny.py',
    '../_base_/datasets/synthshapes3d.py',
    '../_base_/schedules/adamw_5e-4_cosine_300it.py',
    '../_base_/default_runtime.py',
]
model = dict(
    _delete_=True,
    type='PointCLIPAligner',
    data_preprocessor={{_base_.point_preprocessor}},
    point_encoder={{_base_.pretrained_encoder}},
    teacher={{_base_.teacher}},
    text_encoder={{_base_.clip_text}},
    embed_dim=64,
    classes={{_base_.classes}},
    test_templates='synthshapes3d')
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadPointsFromFile', use_dims=[0, 1, 2]),
    dict(type='PointsScaleAndTranslate', scale=(0.9, 1.1), translate=0.2),
    dict(type='SampleCaption'),
    dict(type='PackFusionInputs'),
]))
val_evaluator = dict(type='OpenVocabAccuracy', topk=(1, 5), novel_classes={{_base_.held_out}})
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(interval=300), logger=dict(interval=20))
