# P3M-500-NP (Li et al., "Privacy-Preserving Portrait Matting", ACM MM 2021):
# the 500 portrait photos of P3M-10k's test split whose faces are NOT blurred
# (P3M-500-P holds the face-blurred ones), with hand-labelled alpha mattes; one
# of SEMat's test sets.
# Official layout (JizhiziLi/P3M core/config.py and core/test.py; SEMat README
# and data/dim_dataset.py P3M500Test):
#   data/P3M-10k/validation/P3M-500-NP/original_image/<name>.jpg   the photos
#   data/P3M-10k/validation/P3M-500-NP/mask/<name>.png             the alpha mattes
#   data/P3M-10k/validation/P3M-500-NP/trimap/<name>.png           trimaps, 0 / 128 / 255
#   (train/{blurred_image,mask,fg,bg}/ and validation/P3M-500-P/ are not read here)
# Download: the links of https://github.com/JizhiziLi/P3M (after its release
# agreement); unpack as data/P3M-10k/.
dataset_type = 'MattingDataset'
data_root = 'data/P3M-10k/'
meta_keys = ('sample_idx', 'img_path', 'alpha_path', 'trimap_path', 'ori_shape', 'img_shape',
             'alpha_box')
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMattingAnnotations'),
    dict(type='PackFusionInputs', meta_keys=meta_keys),
]
test_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=True,  # the photos differ in size
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='validation/P3M-500-NP/original_image',
                                  alpha_path='validation/P3M-500-NP/mask',
                                  trimap_path='validation/P3M-500-NP/trimap'),
                 img_suffix='.jpg', alpha_suffix='.png', trimap_suffix='.png',
                 pipeline=test_pipeline, test_mode=True))
# SEMat's protocol: errors over the whole image, the prediction rounded to 8 bits.
# (A list: mmengine reads a dict with a 'metrics' key as an Evaluator config.)
test_evaluator = [dict(type='MattingMetric', region='all', metrics=['sad', 'mse', 'grad', 'conn'])]
