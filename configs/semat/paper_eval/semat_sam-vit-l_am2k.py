# SEMat (SAM ViT-L) on the AM-2K test set (layout and download in the dataset config).
# Official protocol: the image resized so its longer side is 1024, the box around the
# ground-truth alpha, the prediction resized back and rounded to 8 bits, errors over
# the whole image. E.g.
#   python tools/model_converters/semat_to_mmfusion.py \
#       SEMat_SAM.pth checkpoints/semat_sam.pth
#   python tools/test.py configs/semat/paper_eval/semat_sam-vit-l_am2k.py \
#       checkpoints/semat_sam.pth
_base_ = [
    '../../_base_/models/semat_vit-l.py',
    '../../_base_/datasets/matting_am2k.py',
    '../../_base_/default_runtime.py',
]
model = dict(sam_checkpoint=None)  # every weight comes from the converted checkpoint
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadMattingAnnotations'),
    dict(type='mmdet.Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='PackFusionInputs',
         meta_keys=('sample_idx', 'img_path', 'alpha_path', 'trimap_path', 'ori_shape', 'img_shape',
                    'alpha_box', 'scale_factor')),
]))
