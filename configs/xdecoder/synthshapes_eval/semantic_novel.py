# Open-vocabulary semantic segmentation on val_novel: scenes with colour-shape
# combinations held out of training (mmfusion.datasets.synthshapes_meta.HELD_OUT).
# `mIoU_held_out` averages the IoU of those six classes, `mIoU_seen` the others.
_base_ = ['../xdecoder_r18-tiny_2xb8-2300it_synthshapes.py']
test_dataloader = dict(dataset=dict(ann_file='annotations/panoptic_val_novel.json',
                                    data_prefix=dict(seg='annotations/panoptic_val_novel')))
test_evaluator = dict(type='SemSegIoUMetric',
                      class_groups=dict(held_out={{_base_.held_out_classes}}))
