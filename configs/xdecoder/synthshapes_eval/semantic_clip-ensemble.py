# semantic_novel_clip-ensemble.py on the seen-class val split (the training
# config's split and evaluator): what the ensemble does to the seen classes.
_base_ = ['./semantic_novel_clip-ensemble.py']
test_dataloader = {{_base_.val_dataloader}}
test_evaluator = dict(_delete_=True, type='SemSegIoUMetric',
                      class_groups=dict(seen={{_base_.seen_classes}}))
