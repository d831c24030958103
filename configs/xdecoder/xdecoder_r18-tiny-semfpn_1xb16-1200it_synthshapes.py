# Stage 2 of the two-stage tiny X-Decoder recipe: the tiny X-Decoder of
# xdecoder_r18-tiny_1xb16-1800it_synthshapes.py with its backbone loaded from
# stage 1 (semfpn_r18-tiny_1xb16-3500it_synthshapes.py: Semantic FPN on the
# same scenes), trained on all tasks for 1200 iterations. As Mask2Former and
# X-Decoder do with a pretrained backbone, the backbone learns at 0.1x.
_base_ = ['./xdecoder_r18-tiny_1xb16-1800it_synthshapes.py']
semfpn_checkpoint = 'work_dirs/semfpn_r18-tiny_1xb16-3500it_synthshapes/iter_3500.pth'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=semfpn_checkpoint,
                                         prefix='backbone.')))
max_iters = 1200
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=600)
default_hooks = dict(checkpoint=dict(interval=600))
