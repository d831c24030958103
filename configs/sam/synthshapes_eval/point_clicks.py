# One point (the innermost pixel of each shape) on val, then 19 corrective
# clicks by the standard protocol (each in the larger error region, at its
# innermost pixel): `prompt/mIoU` is the single-point mIoU, `prompt/mIoU_c3`
# the mIoU after 3 corrective clicks, `prompt/NoC@85` and `NoC@90` out of 20.
_base_ = ['../sam_vit-tiny_1xb8-2600it_synthshapes.py']
model = dict(test_cfg=dict(num_clicks=19))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadPromptableAnnotations'),
    dict(type='mmdet.Resize', scale={{_base_.img_scale}}, keep_ratio=True),
    dict(type='GeneratePrompts', prompt='point'),
    dict(type='PackFusionInputs'),
]))
