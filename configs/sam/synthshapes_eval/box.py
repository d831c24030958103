# Box prompts (the ground-truth box of each shape) on val: `prompt/mIoU`.
_base_ = ['../sam_vit-tiny_1xb8-2600it_synthshapes.py']
