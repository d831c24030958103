# Linear probe on a frozen open_clip ViT-B/32 at 224x224: the usual frozen
# foundation-model setting, and the second feature-cache benchmark. Set
# `clip_ckpt` to an open_clip ViT-B-32 checkpoint file (e.g. the LAION-2B
# open_clip_pytorch_model.bin); without it the encoder keeps its random init,
# which is enough to measure speed. The first 640 training objects keep a
# CPU epoch short.
_base_ = ['./linear-probe_clip-vit-tiny_1xb64-2e_synthshapes.py']
clip_ckpt = None
crop_size = (224, 224)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CropToBox', margin=0.15, square=True),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='PackFusionInputs'),
]
model = dict(
    data_preprocessor=dict(img=dict(mean=[122.771, 116.746, 104.094],
                                    std=[68.501, 66.632, 70.323])),
    encoder=dict(_delete_=True, type='OpenCLIPImageEncoder', model_name='ViT-B-32',
                 checkpoint=clip_ckpt, frozen=True),
    in_channels=512)
train_dataloader = dict(dataset=dict(pipeline=pipeline, indices=640))
val_dataloader = dict(dataset=dict(datasets=[
    dict(type='CocoInstanceCropDataset', data_root='data/synthshapes',
         ann_file=f'annotations/instances_{split}.json', data_prefix=dict(img_path='images'),
         pipeline=pipeline, test_mode=True) for split in ('val', 'val_novel')
]))
test_dataloader = val_dataloader
