# COCO-Matting (Xia et al., "Towards Natural Image Matting in the Wild via
# Real-Scenario Prior"): SEMat's training set, 38,251 human-instance alpha
# mattes (accessory fusion + mask-to-matte) on COCO train2017 / unlabeled2017
# photos. Released layout (SEMat README "COCO-Matting Dataset"; panel order of
# data/coconut_dataset.py SplitConcatImage: ... | trimap | alpha):
#   data/coco_matting/COCO-Matting_trimap_alpha/<coco id>_<classes>_<k>.png
#       one PNG per matte: trimap | alpha, side by side, equally wide
#   data/coco_matting/coco_matting.json
#       the README's "json file" (image-label correspondence), saved under this
#       name: a list of records naming the PNG under 'save_path' as the
#       official reader expects; set panel_key / img_key if yours differ
#   data/coco_matting/train2017/, data/coco_matting/unlabeled2017/
#       the COCO photos (links to data/coco/...): a matte's photo is the one
#       whose id starts its file name
# Download: COCO-Matting_trimap_alpha.7z and the json from the Google Drive links
# of https://github.com/XiaRho/SEMat (README); train2017.zip and
# unlabeled2017.zip from https://cocodataset.org.
dataset_type = 'COCOMattingDataset'
data_root = 'data/coco_matting/'
meta_keys = ('sample_idx', 'img_path', 'panel_path', 'ori_shape', 'img_shape', 'alpha_box',
             'flip')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMattingPanels'),
    dict(type='MattingRandomFlip', prob=0.5),
    dict(type='PackFusionInputs', meta_keys=meta_keys),
]
# The official training additionally resizes by a random 0.5-1.5 of 1024 and
# crops/pads to 1024x1024 (RandomReszieCrop) and jitters hue/saturation/value;
# without that crop the photos differ in size, hence one image per batch here.
train_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='coco_matting.json',
                 data_prefix=dict(img_path='', panel_path='COCO-Matting_trimap_alpha'),
                 panels=('trimap', 'alpha'), panel_key='save_path',
                 coco_dirs=('train2017', 'unlabeled2017'), pipeline=train_pipeline))
