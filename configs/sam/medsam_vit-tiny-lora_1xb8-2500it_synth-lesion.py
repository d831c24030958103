# MedSAM-style fine-tuning with LoRA on the image encoder: peft LoRA (r 8, alpha 16)
# on the ViT's qkv, attention output and MLP layers, prompt encoder frozen, mask
# decoder trained; the paper-scale MedSAM trains the whole image encoder instead
# (image_encoder=dict(frozen=False)). No feature cache: the encoder's output changes.
_base_ = ['./medsam_vit-tiny_1xb8-600it_synth-lesion.py']
model = dict(image_encoder=dict(
    frozen=True, lora=dict(target_modules=['qkv', 'attn.proj', 'lin1', 'lin2'], r=8, alpha=16)))
custom_hooks = []

max_iters = 2500
# A higher rate than MedSAM's 1e-4 (which trains a 94 M-parameter model for many
# epochs): the adapters and the tiny decoder, 2500 iterations, cosine decay.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, eta_min=1e-5)]
train_cfg = dict(max_iters=max_iters, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=2500))
