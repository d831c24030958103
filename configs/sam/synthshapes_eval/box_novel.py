# Box prompts on val_novel, whose scenes hold colour-shape combinations never
# seen in training (mmfusion.datasets.synthshapes_meta.HELD_OUT). `prompt/mIoU`
# covers every shape of those scenes, `prompt/mIoU_held_out` the held-out ones.
_base_ = ['../sam_vit-tiny_1xb8-2600it_synthshapes.py']
test_dataloader = dict(dataset=dict(ann_file='annotations/instances_val_novel.json'))
test_evaluator = dict(type='PromptableSegMetric', subsets=dict(held_out={{_base_.held_out_classes}}))
