# The paper's setting on Kvasir-Instrument: the BUSI config's model, recipe and
# augmentations on King-HAW/GMS Dataset/kvasir-instrument (images/, masks/ and the official
# split pickle: 472 train / 118 test).
_base_ = './gms_sd2-vae_1xb8-1000e_busi.py'
data_root = 'data/gms/kvasir-instrument'
split_file = 'kvasir_train_test_names.pkl'
train_dataloader = dict(dataset=dict(data_root=data_root, ann_file=split_file))
val_dataloader = dict(dataset=dict(data_root=data_root, ann_file=split_file))
test_dataloader = val_dataloader
