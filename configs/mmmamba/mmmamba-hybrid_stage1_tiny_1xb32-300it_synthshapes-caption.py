# mmMamba-hybrid, stage 1: as the linear student's stage 1, with softmax
# attention kept in every third layer from layer 0 (0 and 3 of 6; the official
# placement, every k-th layer from 0), seeded as the teacher's and not trained.
_base_ = ['./mmmamba-linear_stage1_tiny_1xb32-300it_synthshapes-caption.py']
model = dict(student=dict(attention_every=3))
