# Zero-shot alignment as zeroshot_i2pmae-tiny_1xb32-300it_synthshapes3d.py, but to the tiny
# ConvNeXt depth-view CLIP (clip_convnext-s8-depth_1xb128-600it_synthshapes3d.py, 32x32
# views): its image tower embeds the three views, its text tower the captions and prompts.
_base_ = ['./zeroshot_i2pmae-tiny_1xb32-300it_synthshapes3d.py']
cx_ckpt = 'work_dirs/clip_convnext-s8-depth_1xb128-600it_synthshapes3d/iter_600.pth'
cx_cfg = dict(
    embed_dim=64,
    vision_cfg=dict(timm_model_name='convnext_synth_s8', timm_model_pretrained=False,
                    timm_pool='', timm_proj='linear', image_size=32),
    text_cfg=dict(context_length=20, width=128, heads=4, layers=3, mlp_ratio=2.0))
model = dict(
    teacher=dict(_delete_=True, type='DepthViewTeacher', image_size=32, kernel=3,
                 encoder=dict(type='OpenCLIPImageEncoder', model_cfg=cx_cfg, checkpoint=cx_ckpt,
                              prefix='image_encoder.')),
    text_encoder=dict(_delete_=True, type='OpenCLIPTextEncoder', model_cfg=cx_cfg,
                      checkpoint=cx_ckpt, prefix='text_encoder.'))
