# Zero-shot ADE20K panoptic segmentation (PQ) of the COCO-trained model, on
# ADE20K's panoptic annotations in the COCO panoptic format (as detectron2's
# datasets/prepare_ade20k_pan_seg.py writes them):
#   data/ade/ADEChallengeData2016/ade20k_panoptic_val.json
#   data/ade/ADEChallengeData2016/ade20k_panoptic_val/*.png
#   data/ade/ADEChallengeData2016/images/validation/*.jpg
_base_ = ['./frozenseg_convnext-l-sam-vit-b_8xb2-368k_coco-panoptic.py']
# the classifier: the evaluated dataset's class names (and its thing/stuff split)
custom_hooks = [dict(type='DatasetClassNamesHook')]
data_root = 'data/ade/ADEChallengeData2016/'
test_dataloader = dict(dataset=dict(
    data_root=data_root, ann_file='ade20k_panoptic_val.json',
    data_prefix=dict(img='images/validation/', seg='ade20k_panoptic_val/')))
val_dataloader = test_dataloader
