"""The official FrozenSeg checkpoint layout converts and loads strictly into the
paper-scale config, and the CLI writes what loads."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmfusion.models.frozenseg.official import convert_official_frozenseg
from mmfusion.registry import MODELS

from tests.conftest import REPO

KEYS = osp.join(REPO, 'tests', 'data', 'frozenseg_official_keys.json')
PAPER = osp.join(REPO, 'configs', 'frozenseg',
                 'frozenseg_convnext-l-sam-vit-b_8xb2-368k_coco-panoptic.py')

pytestmark = pytest.mark.usefixtures('one_thread')


def paper_model():
    """The paper-scale FrozenSeg at its real size, without its weight files."""
    cfg = Config.fromfile(PAPER).model
    for part in ('clip_encoder', 'sam_encoder', 'text_encoder'):
        cfg[part]['checkpoint'] = None
    cfg['clip_logit_scale'] = 4.6
    return MODELS.build(cfg)


def official_state_dict() -> dict:
    """Every key of the official checkpoint with its shape; the (small) head
    and SAM-branch tensors random, the towers uninitialised (only shapes and
    names matter for them)."""
    shapes = json.load(open(KEYS))
    g = torch.Generator().manual_seed(0)
    return {k: (torch.empty(s) if k.startswith(('backbone.', 'sam.'))
                else torch.randn(s, generator=g)) for k, s in shapes.items()}


@pytest.fixture(scope='module')
def converted():
    src = official_state_dict()
    state, report = convert_official_frozenseg({'model': src})
    return src, state, report


def test_every_official_key_is_accounted_for(converted):
    src, state, report = converted
    # the report names exactly the keys the converted state dict holds
    targets = set(report.kept) | {dst for _, dst in report.renamed} | \
        {dst for _, dst, _ in report.transformed}
    assert targets == set(state)
    assert len(report.kept) + len(report.renamed) + len(report.transformed) + \
        len(report.dropped) == len(src)
    dropped = {k for k, _ in report.dropped}
    assert 'criterion.empty_weight' in dropped
    assert all(k.startswith(('sam.prompt_encoder', 'sam.mask_decoder', 'criterion'))
               for k in dropped)


def test_converted_loads_strictly_into_the_paper_config(converted):
    src, state, _ = converted
    model = paper_model()
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # values land where they belong
    p = 'sem_seg_head.predictor.'
    pairs = {
        'head.decoder.layers.4.cross_attn.attn.in_proj_weight':
            p + 'transformer_cross_attention_layers.4.multihead_attn.in_proj_weight',
        'head.decoder.layers.4.norms.1.weight':
            p + 'transformer_self_attention_layers.4.norm.weight',
        'head.decoder.layers.8.ffn.layers.1.weight': p + 'transformer_ffn_layers.8.linear2.weight',
        'head.decoder.feature_injectors.6.attn.attn.out_proj.weight':
            p + 'transformer_cross_attention_layers_sam.6.multihead_attn.out_proj.weight',
        'head.decoder.mask_embed.4.weight': p + 'mask_embed.layers.2.weight',
        'head.decoder.cls_embed.layers.2.weight': p + 'class_embed.layers.2.weight',
        'head.decoder.mask_pooling_proj.0.weight': p + '_mask_pooling_proj.0.weight',
        'head.pixel_decoder.lateral_convs.0.conv.weight':
            'sem_seg_head.pixel_decoder.adapter_1.weight',
        'head.pixel_decoder.encoder.layers.5.norms.1.bias':
            'sem_seg_head.pixel_decoder.transformer.encoder.layers.5.norm2.bias',
        'head.pixel_decoder.sam_proj.gn.weight': 'sem_seg_head.pixel_decoder.fpn3.1.weight',
        'void_embedding.weight': 'void_embedding.weight',
    }
    own = model.state_dict()
    for mine, theirs in pairs.items():
        assert torch.equal(own[mine], src[theirs]), mine


def test_sam_branch_keeps_level_zero_of_three(converted):
    src, state, _ = converted
    key = 'sem_seg_head.pixel_decoder.sam_transformer.encoder.layers.2.self_attn.'
    offsets = src[key + 'sampling_offsets.weight'].view(8, 3, 4, 2, 256)
    weights = src[key + 'attention_weights.bias'].view(8, 3, 4)
    mine = 'head.pixel_decoder.sam_encoder.layers.2.self_attn.'
    assert torch.equal(state[mine + 'sampling_offsets.weight'],
                       offsets[:, 0].reshape(64, 256))
    assert torch.equal(state[mine + 'attention_weights.bias'], weights[:, 0].reshape(32))
    level = src['sem_seg_head.pixel_decoder.sam_transformer.level_embed']
    assert torch.equal(state['head.pixel_decoder.sam_level_encoding.weight'], level[:1])


def test_cli_writes_a_loadable_checkpoint(tmp_path, converted):
    import subprocess
    import sys
    src = {k: v for k, v in official_state_dict().items() if not k.startswith('backbone.')}
    # the towers are big: the CLI's output is compared on the head and SAM only
    src.update({k: torch.zeros(1) for k in json.load(open(KEYS)) if k.startswith('backbone.')})
    path = tmp_path / 'official.pth'
    torch.save({'model': src}, path)
    out = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'model_converters',
                                                   'frozenseg_to_mmfusion.py'),
                          str(path), str(tmp_path / 'mmfusion.pth')],
                         capture_output=True, text=True, check=True).stdout
    assert 'renamed' in out and 'dropped' in out and 'level 0 of 3' in out
    ckpt = torch.load(tmp_path / 'mmfusion.pth', weights_only=True)
    assert set(ckpt['state_dict']) == set(converted[1])


def test_unknown_key_is_an_error():
    with pytest.raises(KeyError, match='match no conversion rule'):
        convert_official_frozenseg({'model': {'sem_seg_head.extra.weight': torch.zeros(1)}})
