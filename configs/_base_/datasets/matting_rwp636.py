# RWP-636, RealWorldPortrait-636 (Yu et al., "Mask Guided Matting via
# Progressive Refinement Network", CVPR 2021): 636 real portrait photos with
# alpha mattes; one of SEMat's test sets.
# Official layout (yucornetto/MGMatting code-base/README.md, infer.py and
# evaluation_RWP.py; SEMat README and data/dim_dataset.py RWP636Test):
#   data/RealWorldPortrait-636/image/<name>.jpg    the photos
#   data/RealWorldPortrait-636/alpha/<name>.png    the alpha mattes
#   data/RealWorldPortrait-636/mask/<name>.png     MGMatting's guidance masks (not read)
#   data/RealWorldPortrait-636/detailmap/<name>_cloud_trimap.jpg
#       MGMatting's "detail region" map (JPEG, not a 0/128/255 trimap; not read)
# No trimap: evaluated over the whole image.
# Download: the link in https://github.com/yucornetto/MGMatting (README,
# "real-world portrait dataset"); unpack as data/RealWorldPortrait-636/.
dataset_type = 'MattingDataset'
data_root = 'data/RealWorldPortrait-636/'
meta_keys = ('sample_idx', 'img_path', 'alpha_path', 'ori_shape', 'img_shape', 'alpha_box')
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMattingAnnotations'),
    dict(type='PackFusionInputs', meta_keys=meta_keys),
]
test_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=True,  # the photos differ in size
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 data_prefix=dict(img_path='image', alpha_path='alpha'),
                 img_suffix='.jpg', alpha_suffix='.png',
                 pipeline=test_pipeline, test_mode=True))
# SEMat's protocol: errors over the whole image, the prediction rounded to 8 bits.
# (A list: mmengine reads a dict with a 'metrics' key as an Evaluator config.)
test_evaluator = [dict(type='MattingMetric', region='all', metrics=['sad', 'mse', 'grad', 'conn'])]
