# The paper's setting on BUS: the BUSI config's model, recipe and
# augmentations on King-HAW/GMS Dataset/bus (images/, masks/ and the official
# split pickle: 132 train / 31 test).
_base_ = './gms_sd2-vae_1xb8-1000e_busi.py'
data_root = 'data/gms/bus'
split_file = 'bus_train_test_names.pkl'
train_dataloader = dict(dataset=dict(data_root=data_root, ann_file=split_file))
val_dataloader = dict(dataset=dict(data_root=data_root, ann_file=split_file))
test_dataloader = val_dataloader
