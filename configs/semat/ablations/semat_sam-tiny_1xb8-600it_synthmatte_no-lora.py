# SEMat ablation (configs/semat/README.md): the full model at half the schedule, minus one part.
_base_ = ['./semat_sam-tiny_1xb8-600it_synthmatte_full.py']
model = dict(lora=None)  # the image encoder stays SAM's; the condition layer still trains
