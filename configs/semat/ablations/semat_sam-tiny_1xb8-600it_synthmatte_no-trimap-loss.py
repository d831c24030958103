# SEMat ablation (configs/semat/README.md): the full model at half the schedule, minus one part.
_base_ = ['./semat_sam-tiny_1xb8-600it_synthmatte_full.py']
model = dict(loss_weights=dict(trimap=0))  # matting tokens get no trimap supervision
