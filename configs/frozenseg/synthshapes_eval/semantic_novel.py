# Open-vocabulary semantic segmentation on val_novel: scenes with the six
# colour-shape combinations held out of training. `mIoU_held_out` averages their
# IoU, `mIoU_seen` the seen classes' (the classifier holds all 33 names).
_base_ = ['../frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes.py']
test_dataloader = dict(dataset=dict(ann_file='annotations/panoptic_val_novel.json',
                                    data_prefix=dict(seg='annotations/panoptic_val_novel')))
test_evaluator = dict(type='SemSegIoUMetric',
                      class_groups=dict(held_out={{_base_.held_out_classes}},
                                        seen={{_base_.seen_classes}}))
