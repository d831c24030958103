# semantic_novel.py with FrozenSeg's inference ensemble switched on: the tiny
# ConvNeXt CLIP (configs/clip/clip_convnext-s8_1xb128-600it_synthshapes.py, frozen)
# classifies every predicted mask from a crop around it (oov_source='box_crop', as
# FrozenSeg's tiny recipe: this CLIP's dense map does not transfer to whole scenes,
# configs/frozenseg/README.md); seen classes mix its scores in with weight 0.4, the
# six held-out ones with 0.8 (models/common/open_vocab_ensemble.py).
_base_ = ['./semantic_novel.py']
_clip_cfg = dict(
    embed_dim=64,
    vision_cfg=dict(timm_model_name='convnext_synth_s8', timm_model_pretrained=False,
                    timm_pool='', timm_proj='linear', image_size=32),
    text_cfg=dict(context_length=16, width=128, heads=4, layers=3, mlp_ratio=2.0))
_clip_ckpt = 'work_dirs/clip_convnext-s8_1xb128-600it_synthshapes/iter_600.pth'
model = dict(clip_ensemble=dict(
    clip_encoder=dict(type='OpenCLIPImageEncoder', model_cfg=_clip_cfg, checkpoint=_clip_ckpt,
                      prefix='image_encoder.'),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=_clip_cfg, checkpoint=_clip_ckpt,
                      prefix='text_encoder.'),
    templates='synthshapes', clip_norm=dict(mean=[127.5] * 3, std=[127.5] * 3),
    oov_source='box_crop', clip_crop_size=32,
    ensemble=dict(type='OpenVocabEnsemble', alpha=0.4, beta=0.8,
                  seen_classes={{_base_.seen_classes}})))
