# The paper's setting on GlaS: the BUSI config's model, recipe and
# augmentations on King-HAW/GMS Dataset/glas (images/, masks/ and the official
# split pickle: 85 train / 80 test).
_base_ = './gms_sd2-vae_1xb8-1000e_busi.py'
data_root = 'data/gms/glas'
split_file = 'glas_train_test_names.pkl'
train_dataloader = dict(dataset=dict(data_root=data_root, ann_file=split_file))
val_dataloader = dict(dataset=dict(data_root=data_root, ann_file=split_file))
test_dataloader = val_dataloader
