"""The official X-Decoder Focal-T checkpoint, without downloading it: a state
dict with every official key at its official shape (tests/data/
xdecoder_official_keys.json, written from the official code by
tools/model_converters/make_xdecoder_official_keys.py) converts and loads
strictly into the Focal-T config's model, built at its real size."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mmfusion.models.xdecoder.official import convert_official_xdecoder
from mmfusion.registry import MODELS
from mmfusion.utils.checkpoint import safe_torch_load

from tests.conftest import DATA, REPO

CONFIG = osp.join(REPO, 'configs', 'xdecoder', 'xdecoder_focalt_8xb4-50e_coco-panoptic.py')
KEYS = osp.join(DATA, 'xdecoder_official_keys.json')


def official_state_dict(seed: int = 0) -> dict:
    """Random weights in the official layout (bool buffers as bool)."""
    with open(KEYS) as f:
        shapes = json.load(f)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith('self_attn_mask'):
            state[key] = torch.zeros(shape, dtype=torch.bool)
        else:
            state[key] = torch.randn(shape, generator=g) * 0.02
    return state


@pytest.fixture(scope='module')
def official():
    return official_state_dict()


@pytest.fixture(scope='module')
def model():
    cfg = Config.fromfile(CONFIG)
    return MODELS.build(cfg.model).eval()


def test_fixture_matches_the_key_maker():
    path = osp.join(REPO, 'tools', 'model_converters', 'make_xdecoder_official_keys.py')
    spec = importlib.util.spec_from_file_location('make_xdecoder_official_keys', path)
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    with open(KEYS) as f:
        keys = json.load(f)
    assert keys == maker.xdecoder_focalt_keys()
    # 101 queries (100 + the image query), 9 decoder layers, 12 text blocks
    assert keys['sem_seg_head.predictor.query_feat.weight'] == [101, 512]
    assert sum(k.startswith('sem_seg_head.predictor.transformer_ffn_layers.')
               and k.endswith('linear1.weight') for k in keys) == 9
    assert sum(k.endswith('mlp.c_fc.weight') for k in keys) == 12


def test_official_layout_converts_and_loads_strictly(official, model):
    converted, report = convert_official_xdecoder(official)
    own = model.state_dict()
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    assert not missing and not unexpected, (missing[:10], unexpected[:10])
    for key, value in converted.items():
        assert tuple(value.shape) == tuple(own[key].shape), key
    model.load_state_dict(converted, strict=True)
    # every official key is accounted for, the buffers/ensemble projection dropped
    assert {k for k, _ in report.dropped} == {
        'sem_seg_head.predictor.self_attn_mask', 'criterion.empty_weight', 'backbone_proj'}
    # (in, out) matrices became Linear weights; 101 query rows split 100 + 1
    head = model.head
    torch.testing.assert_close(head.decoder.cls_embed.weight,
                               official['sem_seg_head.predictor.class_embed'].t())
    torch.testing.assert_close(head.caption_out.weight,
                               official['sem_seg_head.predictor.caping_embed'].t())
    q = official['sem_seg_head.predictor.query_feat.weight']
    torch.testing.assert_close(head.decoder.query_feat.weight, q[:100])
    torch.testing.assert_close(head.image_query_feat.weight, q[100:])


def test_converted_text_tower_equals_open_clip_on_the_same_weights(official, model):
    import open_clip
    converted, _ = convert_official_xdecoder(official)
    model.load_state_dict(converted, strict=True)
    text_cfg = Config.fromfile(CONFIG).xdecoder_text_cfg
    reference = open_clip.CLIP(embed_dim=text_cfg['embed_dim'], quick_gelu=True,
                               vision_cfg=dict(image_size=32, patch_size=16, width=64, layers=1),
                               text_cfg=text_cfg['text_cfg'])
    text = {k[len('text_encoder.'):]: v for k, v in converted.items()
            if k.startswith('text_encoder.')}
    missing, unexpected = reference.load_state_dict(text, strict=False)
    assert not unexpected and all(k.startswith('visual.') or k == 'logit_scale'
                                  for k in missing), (missing, unexpected)
    ids = open_clip.get_tokenizer('ViT-B-32')(['a photo of a zebra.', 'A background in coco.'])
    with torch.no_grad():
        ours = model.text_encoder(ids)['pooled']
        theirs = reference.encode_text(ids)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # X-Decoder's TF-style LayerNorm: eps 1e-12 in every text norm
    assert model.text_encoder.ln_final.eps == 1e-12


def test_converter_cli_and_demo_run_on_a_real_photo(official, tmp_path):
    src, dst = tmp_path / 'xdecoder_focalt_last.pt', tmp_path / 'converted.pth'
    torch.save(official, src)
    proc = subprocess.run([sys.executable, 'tools/model_converters/xdecoder_to_mmfusion.py',
                           str(src), str(dst)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'transformed' in proc.stdout and 'dropped' in proc.stdout
    assert len(safe_torch_load(str(dst))['state_dict']) > 500
    out = tmp_path / 'demo.png'
    proc = subprocess.run(
        [sys.executable, 'demo/image_demo.py', CONFIG, str(dst), 'skimage:astronaut',
         '--texts', 'person', 'flag', 'sky', '--task', 'semantic', '--out-file', str(out),
         '--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(512,512)'],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    drawn = np.array(Image.open(out))
    assert drawn.shape == (512, 512, 3)


def test_official_inference_settings(model):
    """xdecoder_focalt_lang.yaml's TEST block and the official decoding settings."""
    cfg = model.head.test_cfg
    assert (cfg['object_mask_threshold'], cfg['overlap_threshold'], cfg['max_per_image']) == \
        (0.8, 0.8, 100)
    assert cfg['mask_resize'] == 'bicubic' and cfg['referring_select'] == 'similarity'
    assert cfg['segment_with_image_token']
    caption = model.head.caption_cfg
    # 77 caption positions, 50 greedy steps after the start token, cut at the period
    assert (caption['max_len'], caption['decode_len'], caption['cut_at_period']) == (77, 51, True)
    assert model.head.decoder.attn_mask_resize == 'bicubic'
    assert model.head.num_queries == 100 and model.head.decoder.num_layers == 9
