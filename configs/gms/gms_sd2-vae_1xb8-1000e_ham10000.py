# The paper's setting on HAM10000: the BUSI config's model, recipe and
# augmentations on King-HAW/GMS Dataset/ham10000 (images/, masks/ and the official
# split pickle: 8015 train / 2000 test).
_base_ = './gms_sd2-vae_1xb8-1000e_busi.py'
data_root = 'data/gms/ham10000'
split_file = 'ham10000_train_test_names.pkl'
train_dataloader = dict(dataset=dict(data_root=data_root, ann_file=split_file))
val_dataloader = dict(dataset=dict(data_root=data_root, ann_file=split_file))
test_dataloader = val_dataloader
