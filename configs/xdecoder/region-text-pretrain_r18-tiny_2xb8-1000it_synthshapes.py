# Stage 1 of the tiny X-Decoder: region-text pretraining of its ResNet-18 and
# pixel decoder on SynthShapes (the stand-in for the paper's pretrained
# FocalNet / UniCL backbone). Every thing instance and stuff segment of a
# scene is mask-pooled on the pixel decoder's three multi-scale maps and
# classified among the class names by cosine against the frozen tiny CLIP's
# text embeddings. xdecoder_r18-tiny_*.py starts from its last checkpoint.
_base_ = ['./xdecoder_r18-tiny_2xb8-2300it_synthshapes.py']
model = dict(
    _delete_=True,
    type='RegionTextPretrainer',
    data_preprocessor={{_base_.model.data_preprocessor}},
    backbone={{_base_.model.backbone}},
    text_encoder={{_base_.model.text_encoder}},
    templates='synthshapes',
    head=dict(type='RegionTextHead', pixel_decoder={{_base_.model.head.pixel_decoder}},
              in_channels={{_base_.hidden}}, num_levels=3),
    classes={{_base_.classes}},
    thing_classes={{_base_.thing_classes}})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations', box_type='hbox'),
    dict(type='PackFusionInputs'),
]
train_dataloader = dict(dataset=dict(refs_file=None, refs_instances_file=None,
                                     pipeline=train_pipeline))
# Training only: X-Decoder's evaluation is the measure.
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

max_iters = 1000
# One learning rate for everything (not stage 2's 0.1x for the pretrained parts).
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     constructor='FusionOptimWrapperConstructor',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05), clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=max_iters))
load_from = None
# The pixel decoder's stride-4 path and mask-feature conv are X-Decoder's, not
# used here.
find_unused_parameters = True
