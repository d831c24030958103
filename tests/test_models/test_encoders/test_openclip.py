"""open_clip wrappers against open_clip itself: weights made and saved by open_clip
in its own formats load into the wrappers, and the outputs match upstream."""
import pytest
import torch

open_clip = pytest.importorskip('open_clip')
from safetensors.torch import save_file  # noqa: E402

from mmfusion.models.encoders.text import OpenCLIPTextEncoder  # noqa: E402
from mmfusion.models.encoders.text.prompt_templates import get_templates  # noqa: E402
from mmfusion.models.encoders.vision import OpenCLIPImageEncoder  # noqa: E402
from mmfusion.registry import MODELS  # noqa: E402

TEXT_CFG = dict(context_length=16, width=32, heads=2, layers=2)
VIT_CFG = dict(embed_dim=24, text_cfg=TEXT_CFG,
               vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=32))
RN_CFG = dict(embed_dim=24, text_cfg=TEXT_CFG,
              vision_cfg=dict(layers=[1, 1, 1, 1], width=16, image_size=64))
CONVNEXT_CFG = dict(embed_dim=24, text_cfg=TEXT_CFG,
                    vision_cfg=dict(timm_model_name='convnext_atto', timm_pool='',
                                    timm_proj='linear', image_size=64))
TOL = 1e-5


def _upstream(cfg, custom_text=False, seed=0):
    """An open_clip model with every weight and statistic perturbed, so no
    zero-initialised branch (e.g. ResNet bn3) hides a wiring error."""
    torch.manual_seed(seed)
    model = (open_clip.CustomTextCLIP if custom_text else open_clip.CLIP)(**cfg)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('running_var'):
                t.uniform_(0.5, 1.5)
            elif t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.05)
    return model.eval()


def _save(model, tmp_path, fmt):
    """Save in open_clip's formats: a state dict (.pt / .safetensors) or the
    training checkpoint open_clip's train loop writes (DDP 'module.' keys)."""
    sd = model.state_dict()
    if fmt == 'pt':
        path = tmp_path / 'open_clip_model.pt'
        torch.save(sd, path)
    elif fmt == 'safetensors':
        path = tmp_path / 'open_clip_model.safetensors'
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        path = tmp_path / 'epoch_1.pt'
        optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
        torch.save(dict(epoch=1, name='tiny', state_dict={f'module.{k}': v for k, v in sd.items()},
                        optimizer=optim.state_dict()), path)
    return str(path)


def _maxdiff(a, b):
    return (a - b).abs().max().item()


@pytest.fixture(scope='module')
def vit():
    return _upstream(VIT_CFG)


@pytest.fixture(scope='module')
def resnet():
    return _upstream(RN_CFG)


# -- image: ViT ------------------------------------------------------------
@pytest.mark.parametrize('fmt', ['pt', 'train', 'safetensors'])
def test_vit_matches_upstream(vit, tmp_path, fmt):
    enc = OpenCLIPImageEncoder(model_cfg=VIT_CFG, checkpoint=_save(vit, tmp_path, fmt),
                               out_indices=(0, -1))
    assert set(enc.state_dict()) == {k for k in vit.state_dict() if k.startswith('visual.')}
    img = torch.randn(2, 3, 32, 32)
    # Block outputs captured from upstream's own blocks (batch-first, token 0 = cls).
    captured = []
    hooks = [b.register_forward_hook(lambda m, i, o: captured.append(o))
             for b in vit.visual.transformer.resblocks]
    with torch.no_grad():
        ref = vit.encode_image(img)
        out = enc(img)
    for h in hooks:
        h.remove()
    assert out['pooled'].shape == (2, 24)
    assert _maxdiff(out['pooled'], ref) <= TOL
    for tokens, block_out in zip(out['tokens'], [captured[0], captured[-1]]):
        assert tokens.shape == (2, 16, 64)
        assert _maxdiff(tokens, block_out[:, 1:]) <= TOL
    maps = out['maps'][1]
    assert maps.shape == (2, 64, 4, 4)
    # Patch (row i, column j) is token i * 4 + j.
    assert torch.equal(maps[:, :, 2, 3], out['tokens'][1][:, 2 * 4 + 3])
    assert enc.embed_dim == 24
    assert enc.mean == pytest.approx([v * 255 for v in open_clip.OPENAI_DATASET_MEAN])
    with pytest.raises(ValueError, match='built for'):
        enc(torch.randn(1, 3, 48, 48))


def test_prefix_loads_mmfusion_checkpoint(vit, tmp_path):
    """A model holding the wrapper as `image_encoder` saves `image_encoder.visual.*`."""
    enc = OpenCLIPImageEncoder(model_cfg=VIT_CFG, checkpoint=_save(vit, tmp_path, 'pt'))
    path = tmp_path / 'iter_10.pth'
    torch.save(dict(meta=dict(iter=10), state_dict={
        **{f'image_encoder.{k}': v for k, v in enc.state_dict().items()},
        'head.weight': torch.zeros(3)}), path)
    again = OpenCLIPImageEncoder(model_cfg=VIT_CFG, checkpoint=str(path), prefix='image_encoder.')
    img = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert _maxdiff(again(img)['pooled'], vit.encode_image(img)) <= TOL
    with pytest.raises(KeyError, match=r"OpenCLIPImageEncoder: no key in .*iter_10\.pth starts "
                                       r"with prefix 'text_encoder\.'.*image_encoder\."):
        OpenCLIPImageEncoder(model_cfg=VIT_CFG, checkpoint=str(path), prefix='text_encoder.')


def test_wrong_checkpoint_names_file(vit, resnet, tmp_path):
    rn_path = _save(resnet, tmp_path, 'pt')
    with pytest.raises(RuntimeError, match='open_clip_model.pt.*missing keys'):
        OpenCLIPImageEncoder(model_cfg=VIT_CFG, checkpoint=rn_path)
    # A text-only file for the image encoder, and an image-only one for the text encoder.
    text_only = tmp_path / 'text_only.pt'
    sd = vit.state_dict()
    torch.save({k: v for k, v in sd.items() if not k.startswith('visual.')}, text_only)
    with pytest.raises(RuntimeError, match='text_only.pt.*bare image-tower'):
        OpenCLIPImageEncoder(model_cfg=VIT_CFG, checkpoint=str(text_only))
    image_only = tmp_path / 'image_only.pt'
    torch.save({k: v for k, v in vit.state_dict().items() if k.startswith('visual.')}, image_only)
    with pytest.raises(KeyError, match='image_only.pt'):
        OpenCLIPTextEncoder(model_cfg=VIT_CFG, checkpoint=str(image_only))
    # OpenAI's original files are TorchScript archives: refused with a way out.
    jit_path = tmp_path / 'RN50.pt'
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(jit_path))
    with pytest.raises(RuntimeError, match='RN50.pt is a TorchScript archive'):
        OpenCLIPImageEncoder(model_cfg=RN_CFG, checkpoint=str(jit_path))


# -- image: ModifiedResNet ---------------------------------------------------
def test_resnet_matches_upstream(resnet, tmp_path):
    enc = OpenCLIPImageEncoder(model_cfg=RN_CFG, checkpoint=_save(resnet, tmp_path, 'train'))
    img = torch.randn(2, 3, 64, 64)
    captured = []
    hook = resnet.visual.layer4.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        ref = resnet.encode_image(img)
        out = enc(img)
    hook.remove()
    assert _maxdiff(out['pooled'], ref) <= TOL
    assert [tuple(m.shape) for m in out['maps']] == [
        (2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]
    assert _maxdiff(out['maps'][-1], captured[0]) <= TOL
    assert out['dense'].shape == (2, 24, 2, 2)
    # The resized-positional-embedding pool used at other input sizes is the
    # same attention pool: at the native grid it reproduces upstream.
    with torch.no_grad():
        assert _maxdiff(enc._attnpool_resized(out['maps'][-1]), ref) <= TOL
        other = enc(torch.randn(1, 3, 96, 96))
    assert other['dense'].shape == (1, 24, 3, 3) and other['pooled'].shape == (1, 24)


def test_resnet_dense_is_value_output_projection(tmp_path):
    """'dense' = c_proj(v_proj(feature)) per location (MaskCLIP). With a zero
    query projection the attention pool's weights are uniform, and with a zero
    positional embedding its output is c_proj(v_proj(mean feature)), which by
    linearity is the mean of 'dense'; upstream computes that pooled vector."""
    model = _upstream(RN_CFG, seed=1)
    pool = model.visual.attnpool
    with torch.no_grad():
        pool.q_proj.weight.zero_()
        pool.q_proj.bias.zero_()
        pool.positional_embedding.zero_()
    enc = OpenCLIPImageEncoder(model_cfg=RN_CFG, checkpoint=_save(model, tmp_path, 'pt'))
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model.encode_image(img)
        out = enc(img)
    assert _maxdiff(out['pooled'], ref) <= TOL
    assert _maxdiff(out['dense'].mean(dim=(2, 3)), ref) <= TOL


# -- image: timm ConvNeXt ----------------------------------------------------
def test_convnext_matches_upstream(tmp_path):
    model = _upstream(CONVNEXT_CFG)
    enc = OpenCLIPImageEncoder(model_cfg=CONVNEXT_CFG, checkpoint=_save(model, tmp_path, 'pt'))
    with torch.no_grad():
        img = torch.randn(2, 3, 64, 64)
        out = enc(img)
        assert _maxdiff(out['pooled'], model.encode_image(img)) <= TOL
        # A 32x32 input leaves a 1x1 last map: the per-pixel head there is the
        # pooled head, so 'dense' must equal upstream's embedding.
        small = torch.randn(2, 3, 32, 32)
        dense = enc(small)['dense']
        assert _maxdiff(dense[:, :, 0, 0], model.encode_image(small)) <= TOL
    assert [m.shape[-1] for m in out['maps']] == [16, 8, 4, 2]
    assert out['dense'].shape == (2, 24, 2, 2)


def test_embed_pooled_is_clip_head_on_any_pooling(tmp_path):
    # CLIP's head on the average of the last map is encode_image itself; the
    # same head takes features pooled any other way (FrozenSeg's masks).
    model = _upstream(CONVNEXT_CFG)
    enc = OpenCLIPImageEncoder(model_cfg=CONVNEXT_CFG, checkpoint=_save(model, tmp_path, 'pt'))
    with torch.no_grad():
        img = torch.randn(2, 3, 64, 64)
        last = enc(img)['maps'][-1]
        assert _maxdiff(enc.embed_pooled(last.mean((2, 3))), model.encode_image(img)) <= TOL
        # per pixel it is the dense map
        per_pixel = enc.embed_pooled(last.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert _maxdiff(per_pixel, enc(img)['dense']) <= TOL


def test_tiny_stride8_convnext_tower():
    cfg = dict(embed_dim=16, vision_cfg=dict(timm_model_name='convnext_synth_s8',
                                             timm_model_pretrained=False, timm_pool='',
                                             timm_proj='linear', image_size=32),
               text_cfg=dict(context_length=8, width=16, heads=2, layers=1))
    out = OpenCLIPImageEncoder(model_cfg=cfg)(torch.randn(1, 3, 96, 96))
    assert [m.shape[-1] for m in out['maps']] == [96, 48, 24, 12]
    assert out['dense'].shape == (1, 16, 12, 12)


# -- named models, registry, freezing ----------------------------------------
def test_named_models_have_upstream_keys():
    enc = OpenCLIPImageEncoder(model_name='RN50')  # built for real, random weights
    with torch.device('meta'):  # key sets only: no memory, no init time
        ref = open_clip.CLIP(**open_clip.get_model_config('RN50'))
        vit_ref = open_clip.CLIP(**open_clip.get_model_config('ViT-B-32'))
        vit_img = OpenCLIPImageEncoder(model_name='ViT-B-32')
        vit_txt = OpenCLIPTextEncoder(model_name='ViT-B-32')
    ref_keys = set(ref.state_dict())
    assert set(enc.state_dict()) == {k for k in ref_keys if k.startswith('visual.')}
    vit_keys = set(vit_ref.state_dict())
    assert set(vit_img.state_dict()) == {k for k in vit_keys if k.startswith('visual.')}
    assert set(vit_txt.state_dict()) == {
        k for k in vit_keys if not k.startswith('visual.') and k != 'logit_scale'}
    assert enc.embed_dim == 1024 and enc.image_size == (224, 224)
    with pytest.raises(ValueError, match='unknown open_clip model_name'):
        OpenCLIPImageEncoder(model_name='ViT-B-33x')


def test_preprocess_from_pretrained_tags():
    with torch.device('meta'):
        # SigLIP's only tag uses Inception mean/std, not open_clip's OpenAI default.
        siglip = OpenCLIPImageEncoder(model_name='ViT-B-16-SigLIP')
        with pytest.warns(UserWarning, match='quick_gelu'):
            OpenCLIPImageEncoder(model_name='ViT-B-32', pretrained_tag='openai')
    tag = open_clip.get_pretrained_cfg('ViT-B-16-SigLIP', 'webli')
    assert siglip.mean == pytest.approx([v * 255 for v in tag['mean']])
    assert siglip.std == pytest.approx([v * 255 for v in tag['std']])
    assert siglip.mean != pytest.approx([v * 255 for v in open_clip.OPENAI_DATASET_MEAN])


def test_frozen_by_default_and_registry():
    enc = MODELS.build(dict(type='OpenCLIPImageEncoder', model_cfg=VIT_CFG))
    txt = MODELS.build(dict(type='OpenCLIPTextEncoder', model_cfg=VIT_CFG))
    for m in (enc, txt):
        assert not any(p.requires_grad for p in m.parameters())
        m.train()
        assert not m.training and not any(c.training for c in m.modules())
    unfrozen = OpenCLIPImageEncoder(model_cfg=VIT_CFG, frozen=False)
    assert all(p.requires_grad for p in unfrozen.parameters())


# -- text ----------------------------------------------------------------------
TEXTS = ['a photo of a cat.', 'hello world!!', '',
         'a very long sentence that certainly does not fit in sixteen tokens at all']


def test_text_matches_upstream(vit, tmp_path):
    enc = OpenCLIPTextEncoder(model_cfg=VIT_CFG, checkpoint=_save(vit, tmp_path, 'train'))
    ids = open_clip.SimpleTokenizer(context_length=16)(TEXTS)
    captured = []
    hook = vit.ln_final.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        ref = vit.encode_text(ids)
        out = enc(TEXTS)
    hook.remove()
    assert _maxdiff(out['pooled'], ref) <= TOL
    assert out['tokens'].shape == (4, 16, 32)
    assert _maxdiff(out['tokens'], captured[0]) <= TOL
    # Valid = start token .. end token (the end token has the largest id).
    eot = ids.argmax(dim=-1, keepdim=True)
    assert torch.equal(out['mask'], torch.arange(16)[None] <= eot)
    assert out['mask'][3].all() and out['mask'][2].sum() == 2


def test_custom_text_layout(tmp_path):
    """CustomTextCLIP keeps the tower under `text.`; a CLIP-layout checkpoint
    also loads into it (open_clip's loader converts the same way)."""
    cfg = dict(VIT_CFG, custom_text=True)
    model = _upstream(VIT_CFG, custom_text=True)
    enc = OpenCLIPTextEncoder(model_cfg=cfg, checkpoint=_save(model, tmp_path, 'pt'))
    assert set(enc.state_dict()) == {k for k in model.state_dict() if k.startswith('text.')}
    ids = open_clip.tokenize(TEXTS, context_length=16)
    with torch.no_grad():
        assert _maxdiff(enc(TEXTS)['pooled'], model.encode_text(ids)) <= TOL
    clip_model = _upstream(VIT_CFG, seed=3)
    enc = OpenCLIPTextEncoder(model_cfg=cfg, checkpoint=_save(clip_model, tmp_path, 'train'))
    with torch.no_grad():
        assert _maxdiff(enc(TEXTS)['pooled'], clip_model.encode_text(ids)) <= TOL


def test_prompt_ensembling_matches_manual_loop(vit, tmp_path):
    enc = OpenCLIPTextEncoder(model_cfg=VIT_CFG, checkpoint=_save(vit, tmp_path, 'pt'))
    names = ['circle', 'square', 'triangle']
    templates = ['a {}.', lambda c: f'a drawing of a {c}.']
    with torch.no_grad():
        got = enc.embed_class_names(names, templates)
        expected = []
        for name in names:
            prompts = ['a ' + name + '.', 'a drawing of a ' + name + '.']
            emb = vit.encode_text(open_clip.tokenize(prompts, context_length=16), normalize=True)
            expected.append(torch.nn.functional.normalize(emb.mean(dim=0), dim=-1))
        assert got.shape == (3, 24)
        assert _maxdiff(got, torch.stack(expected)) <= TOL
        # Named sets; chunked forwards give the same embeddings.
        shapes = enc.embed_class_names(names, 'synthshapes')
        assert _maxdiff(shapes, enc.embed_class_names(names, 'synthshapes', batch_size=5)) <= TOL
    imagenet = get_templates('imagenet')
    assert len(imagenet) == len(open_clip.OPENAI_IMAGENET_TEMPLATES)
    assert imagenet[0] == open_clip.OPENAI_IMAGENET_TEMPLATES[0]('{}')
    assert get_templates('simple') == ['a photo of a {}.']
    with pytest.raises(ValueError, match="known sets.*'simple'"):
        enc.embed_class_names(names, 'imagenett')
    with pytest.raises(ValueError, match='exactly one'):
        get_templates(['no placeholder'])


def test_class_embedding_cache_follows_the_weights(vit, tmp_path):
    """A frozen tower keeps its class embeddings across train() (mmengine's
    iteration loop calls it every step); a weight load, a trainable weight or
    a dtype change recomputes them."""
    enc = OpenCLIPTextEncoder(model_cfg=VIT_CFG, checkpoint=_save(vit, tmp_path, 'pt'))
    names = ['circle', 'square']
    first = enc.embed_class_names(names)
    enc.train()
    assert enc.embed_class_names(names) is first
    # Loading other weights: new embeddings, equal to the other model's.
    other = _upstream(VIT_CFG, seed=5)
    enc.load_checkpoint(_save(other, tmp_path, 'safetensors'))
    with torch.no_grad():
        expected = torch.nn.functional.normalize(
            other.encode_text(open_clip.tokenize(['a photo of a circle.', 'a photo of a square.'],
                                                 context_length=16)), dim=-1)
    assert _maxdiff(enc.embed_class_names(names), expected) <= TOL
    cached = enc.embed_class_names(names)
    # Another dtype is another entry.
    assert enc.double().embed_class_names(names).dtype == torch.float64
    enc.float()
    # A trainable weight: train() drops the cache, and grad mode bypasses it.
    enc.ln_final.weight.requires_grad_(True)
    enc.train()
    assert not enc._class_embed_cache
    fresh = enc.embed_class_names(names)
    assert fresh.requires_grad and fresh is not cached


def test_model_cfg_needs_only_the_built_towers_config():
    """An image tower builds from a config without text_cfg (a CLIP trained with
    another text tower); a text tower without it is an error naming the field."""
    vision_only = dict(embed_dim=VIT_CFG['embed_dim'], vision_cfg=VIT_CFG['vision_cfg'])
    pooled = OpenCLIPImageEncoder(model_cfg=vision_only)(torch.randn(1, 3, 32, 32))['pooled']
    assert pooled.shape == (1, VIT_CFG['embed_dim'])
    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['text_cfg'\]"):
        OpenCLIPTextEncoder(model_cfg=vision_only)
