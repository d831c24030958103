# Zero-shot ADE20K panoptic segmentation (PQ; paper: 19.1 for Focal-T) of the
# COCO-trained Focal-T X-Decoder with its official inference (score > 0.8,
# overlap 0.8, the image token as a 101st query), shortest side 640, on
# ADE20K's panoptic annotations in the COCO panoptic format (as detectron2's
# datasets/prepare_ade20k_pan_seg.py writes them):
#   data/ade/ADEChallengeData2016/ade20k_panoptic_val.json
#   data/ade/ADEChallengeData2016/ade20k_panoptic_val/*.png
#   data/ade/ADEChallengeData2016/images/validation/*.jpg
# Weights: the official xdecoder_focalt_last.pt converted by
# tools/model_converters/xdecoder_to_mmfusion.py (configs/xdecoder/README.md).
_base_ = ['./xdecoder_focalt_8xb4-50e_coco-panoptic.py']
# the classifier: the evaluated dataset's class names (and its thing/stuff split)
custom_hooks = [dict(type='DatasetClassNamesHook')]
data_root = 'data/ade/ADEChallengeData2016/'
test_dataloader = dict(batch_size=1, dataset=dict(
    data_root=data_root, ann_file='ade20k_panoptic_val.json',
    data_prefix=dict(img='images/validation/', seg='ade20k_panoptic_val/'),
    pipeline=[dict(type='LoadImageFromFile'),
              dict(type='mmdet.Resize', scale=(2560, 640), keep_ratio=True),
              dict(type='PackFusionInputs')]))
val_dataloader = test_dataloader
