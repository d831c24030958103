# Fine-tuned classification of SynthShapes3D's 14 seen classes from the tiny I2P-MAE
# encoder (the official fine-tuning model: no per-level norms, one LayerNorm on the top
# tokens, mean + max pooling, the 3-layer head with dropout 0.5, label smoothing 0.2).
_base_ = [
    '../_base_/models/i2pmae_tiny.py',
    '../_base_/datasets/synthshapes3d.py',
    '../_base_/schedules/adamw_5e-4_cosine_300it.py',
    '../_base_/default_runtime.py',
]
model = dict(
    _delete_=True,
    type='PointCloudClassifier',
    data_preprocessor={{_base_.point_preprocessor}},
    encoder={{_base_.finetune_encoder}},
    num_classes=14,
    label_smoothing=0.2)
train_dataloader = dict(dataset=dict(metainfo=dict(classes={{_base_.seen_classes}})))
val_dataloader = dict(dataset=dict(metainfo=dict(classes={{_base_.seen_classes}})))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabAccuracy', topk=(1, 5))
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(interval=300), logger=dict(interval=20))
