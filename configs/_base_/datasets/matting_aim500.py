# AIM-500 (Li et al., "Deep Automatic Natural Image Matting", IJCAI 2021): 500
# real photos (salient opaque, salient transparent/meticulous and non-salient
# foregrounds) with hand-labelled alpha mattes; one of SEMat's test sets.
# Official layout (JizhiziLi/AIM core/config.py and core/test.py; SEMat
# data/dim_dataset.py AIM500Test):
#   data/AIM-500/original/<name>.jpg   the photos
#   data/AIM-500/mask/<name>.png       the alpha mattes
#   data/AIM-500/trimap/<name>.png     trimaps, 0 / 128 / 255 (usr/ is not read)
# Download: the Google Drive / Baidu links of https://github.com/JizhiziLi/AIM
# (after its release agreement); unpack as data/AIM-500/.
dataset_type = 'MattingDataset'
data_root = 'data/AIM-500/'
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
                 data_prefix=dict(img_path='original', alpha_path='mask', trimap_path='trimap'),
                 img_suffix='.jpg', alpha_suffix='.png', trimap_suffix='.png',
                 pipeline=test_pipeline, test_mode=True))
# SEMat's protocol: errors over the whole image, the prediction rounded to 8 bits.
# (A list: mmengine reads a dict with a 'metrics' key as an Evaluator config.)
test_evaluator = [dict(type='MattingMetric', region='all', metrics=['sad', 'mse', 'grad', 'conn'])]
