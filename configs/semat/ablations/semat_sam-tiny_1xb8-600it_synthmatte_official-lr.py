# SEMat ablation (configs/semat/README.md): the full model at half the schedule with the
# official optimizer settings (AdamW 5e-5, weight decay 0.1) instead of the recipe's.
_base_ = ['./semat_sam-tiny_1xb8-600it_synthmatte_full.py']
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.1))
