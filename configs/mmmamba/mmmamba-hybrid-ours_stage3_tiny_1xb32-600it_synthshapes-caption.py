# mmMamba-hybrid, stage 3, our earlier recipe: as mmmamba-linear-ours stage 3,
# with softmax attention kept in layers 2 and 5 of 6 (every third, ending with
# the last layer), seeded as the teacher's and not trained.
_base_ = ['./mmmamba-linear-ours_stage3_tiny_1xb32-600it_synthshapes-caption.py']
model = dict(student=dict(attention_layers=[2, 5]))
load_from = 'work_dirs/mmmamba-hybrid-ours_stage2_tiny_1xb32-300it_synthshapes-caption/iter_300.pth'
