# Zero-shot Cityscapes panoptic segmentation (PQ) of the COCO-trained model, on
# the COCO-format panoptic annotations cityscapesscripts writes
# (createPanopticImgs):
#   data/cityscapes/gtFine/cityscapes_panoptic_val.json
#   data/cityscapes/gtFine/cityscapes_panoptic_val/*.png
#   data/cityscapes/leftImg8bit/val/<city>/*.png
# Test resize as the official Cityscapes config: shorter side 1024, longer <= 2560.
_base_ = ['./frozenseg_convnext-l-sam-vit-b_8xb2-368k_coco-panoptic.py']
# the classifier: the evaluated dataset's class names (and its thing/stuff split)
custom_hooks = [dict(type='DatasetClassNamesHook')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(2560, 1024), keep_ratio=True),
    dict(type='PackFusionInputs'),
]
test_dataloader = dict(dataset=dict(
    data_root='data/cityscapes/', ann_file='gtFine/cityscapes_panoptic_val.json',
    data_prefix=dict(img='leftImg8bit/val/', seg='gtFine/cityscapes_panoptic_val/'),
    pipeline=test_pipeline))
val_dataloader = test_dataloader
