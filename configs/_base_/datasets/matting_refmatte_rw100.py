# RefMatte-RW100 (Li et al., "Referring Image Matting", CVPR 2023): 100 real
# photos with several foreground instances each; every instance has its own
# alpha matte and referring expressions. One of SEMat's test sets: one sample
# per instance, prompted by the box around its alpha (``alpha_box``).
# Official layout (the released RefMatte_RW_100 folder, as the SEMat README and
# data/dim_dataset.py RW100Test read it, and as public RW100 readers use the
# label file):
#   data/RefMatte_RW_100/image/<name>.jpg               the photos
#   data/RefMatte_RW_100/mask/<name>_<k>.png            the alpha of instance k
#   data/RefMatte_RW_100/refmatte_rw100_label.json
#       {"<name>_<k>": {"image_name": "<name>", "expressions": [...], ...}, ...}
# Download: the OneDrive link of https://github.com/JizhiziLi/RIM (README,
# "RefMatte-RW100", after its release agreement); unpack as data/RefMatte_RW_100/.
dataset_type = 'RefMatteDataset'
data_root = 'data/RefMatte_RW_100/'
meta_keys = ('sample_idx', 'img_path', 'alpha_path', 'ori_shape', 'img_shape', 'alpha_box',
             'image_name', 'expressions')
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMattingAnnotations'),
    dict(type='PackFusionInputs', meta_keys=meta_keys),
]
test_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=True,  # the photos differ in size
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='refmatte_rw100_label.json',
                 data_prefix=dict(img_path='image', alpha_path='mask'),
                 img_suffix='.jpg', alpha_suffix='.png',
                 pipeline=test_pipeline, test_mode=True))
# SEMat's protocol: errors over the whole image, the prediction rounded to 8 bits.
# (A list: mmengine reads a dict with a 'metrics' key as an Evaluator config.)
test_evaluator = [dict(type='MattingMetric', region='all', metrics=['sad', 'mse', 'grad', 'conn'])]
