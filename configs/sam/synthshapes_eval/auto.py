# Automatic mask generation (segment_anything's SamAutomaticMaskGenerator on the
# tiny SAM) on val, scored as class-agnostic mask AP against the shapes.
_base_ = ['../sam_vit-tiny_1xb8-2600it_synthshapes.py']
# segment_anything's thresholds (0.88 predicted IoU, 0.95 stability) are tuned for
# ViT-H; the tiny SAM's scores are lower, so both are 0.5 here (not tuned on val).
model = dict(test_cfg=dict(mode='auto', auto_cfg=dict(
    points_per_side=16, pred_iou_thresh=0.5, stability_score_thresh=0.5)))
test_evaluator = dict(type='CocoMaskAPMetric', class_agnostic=True)
