# mmMamba-linear, stage 1, our earlier recipe (kept to compare with the official
# one, README "paper vs ours"): the MSE compares the layer outputs after the
# output projections, unscaled, with gradients clipped to norm 1 and no weight
# decay. Stages 2 and 3 then train every Mamba-2 mixer parameter.
_base_ = ['./mmmamba-linear_stage1_tiny_1xb32-300it_synthshapes-caption.py']
model = dict(mse_target='output', mse_factor=1.0)
optim_wrapper = dict(optimizer=dict(weight_decay=0.0), clip_grad=dict(max_norm=1.0))
