import torch
from mmengine.config import Config

from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample

from tests.conftest import REPO

TINY_CLIP = dict(embed_dim=16,
                 vision_cfg=dict(image_size=16, patch_size=8, width=32, layers=1, head_width=16),
                 text_cfg=dict(context_length=12, width=32, heads=2, layers=1))


def build_tiny():
    cfg = Config.fromfile(f'{REPO}/configs/clip/clip_vit-tiny_1xb128-1k_synthshapes.py')
    cfg.model.image_encoder.model_cfg = TINY_CLIP
    cfg.model.text_encoder.model_cfg = TINY_CLIP
    return MODELS.build(cfg.model), cfg


def test_loss_reaches_both_towers_and_temperature():
    torch.manual_seed(0)
    model, _ = build_tiny()
    model.train()
    inputs = dict(img=torch.randn(4, 3, 16, 16), text=['red circle', 'blue star', 'red star',
                                                       'green cross'])
    losses = model(inputs, [FusionDataSample() for _ in range(4)], mode='loss')
    assert torch.isfinite(losses['loss_clip'])
    losses['loss_clip'].backward()
    assert model.logit_scale.grad is not None
    for tower in (model.image_encoder, model.text_encoder):
        grads = [p.grad for p in tower.parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


def test_zero_shot_matches_manual_scores_and_recomputes_after_training():
    torch.manual_seed(0)
    model, cfg = build_tiny()
    model.eval()
    img = torch.randn(3, 3, 16, 16)
    samples = model.predict(dict(img=img), [FusionDataSample() for _ in range(3)])
    assert samples[0].pred_score.shape == (len(cfg.classes), )
    names = cfg.classes
    text = model.text_encoder.embed_class_names(names, model.test_templates)
    image = torch.nn.functional.normalize(model.image_encoder(img)['pooled'], dim=-1)
    expected = (model.scale() * image @ text.t()).softmax(-1)
    torch.testing.assert_close(torch.stack([s.pred_score for s in samples]), expected)
    # A user-given class list at inference time.
    custom = model.predict(dict(img=img), [FusionDataSample() for _ in range(3)],
                           classes=['circle', 'square'])
    assert custom[0].pred_score.shape == (2, )
    # Training invalidates the cached class embeddings.
    assert model.text_encoder._class_embed_cache
    model.train()
    assert not model.text_encoder._class_embed_cache
