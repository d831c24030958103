# AM-2K (Li et al., "Bridging Composite and Real: Towards End-to-end Deep Image
# Matting", IJCV 2022): 2,000 animal photos of 20 categories with hand-labelled
# alpha mattes; its 200-image validation split is one of SEMat's test sets.
# Official layout (JizhiziLi/GFM core/config.py and core/test.py; SEMat
# data/dim_dataset.py AM2KTest):
#   data/AM-2K/validation/original/<name>.jpg   the photos
#   data/AM-2K/validation/mask/<name>.png       the alpha mattes
#   data/AM-2K/validation/trimap/<name>.png     trimaps, 0 / 128 / 255
#   (data/AM-2K/train/{original,mask,fg,bg}/ is the training split, not read here)
# Download: the Google Drive / Baidu links of https://github.com/JizhiziLi/GFM
# (after its release agreement); unpack as data/AM-2K/.
dataset_type = 'MattingDataset'
data_root = 'data/AM-2K/'
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
                 data_prefix=dict(img_path='validation/original', alpha_path='validation/mask',
                                  trimap_path='validation/trimap'),
                 img_suffix='.jpg', alpha_suffix='.png', trimap_suffix='.png',
                 pipeline=test_pipeline, test_mode=True))
# SEMat's protocol: errors over the whole image, the prediction rounded to 8 bits.
# (A list: mmengine reads a dict with a 'metrics' key as an Evaluator config.)
test_evaluator = [dict(type='MattingMetric', region='all', metrics=['sad', 'mse', 'grad', 'conn'])]
