# mmMamba-hybrid, stage 3: as the linear student's stage 3, with softmax
# attention kept in every third layer (2 and 5 of 6), seeded as the teacher's
# and not trained.
_base_ = ['./mmmamba-linear_stage3_tiny_1xb32-600it_synthshapes-caption.py']
model = dict(student=dict(attention_layers=[2, 5]))
load_from = 'work_dirs/mmmamba-hybrid_stage2_tiny_1xb32-300it_synthshapes-caption/iter_300.pth'
