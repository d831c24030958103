# The paper's cross-domain setting: trained on BUSI exactly as
# gms_sd2-vae_1xb8-1000e_busi.py (validated on BUSI's test split), tested on
# BUS's official test split (31 images) without fine-tuning. Test the BUSI
# checkpoint: tools/test.py this config work_dirs/<busi run>/best_dice_*.pth
_base_ = './gms_sd2-vae_1xb8-1000e_busi.py'
test_dataloader = dict(
    dataset=dict(data_root='data/gms/bus', ann_file='bus_train_test_names.pkl', split='test'))
