"""Hugging Face Llama checkpoints as Zipper towers: folders written by
transformers itself load into CausalDecoderTower with the same logits."""
import json

import pytest
import torch

from mmfusion.models.common import CausalDecoderTower
from mmfusion.models.common.causal_lm import hf_llama_tower
from mmfusion.models.zipper import ZipperDecoder
from mmfusion.registry import MODELS

transformers = pytest.importorskip('transformers')
pytestmark = pytest.mark.usefixtures('one_thread')

# Grouped-query attention (2 key/value heads for 4 query heads), a RoPE base
# and an RMSNorm epsilon other than the tower's defaults.
TINY = dict(vocab_size=61, hidden_size=32, intermediate_size=56, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rope_theta=5000.0, rms_norm_eps=1e-5)


def _save_llama(folder, tie: bool, **save_kwargs):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(**TINY, tie_word_embeddings=tie)
    model = transformers.LlamaForCausalLM(config).eval()
    # Weights larger than Llama's init (logits of order 1, so that a wrong
    # RoPE base shows) and random norm weights (a swapped or dropped norm shows).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0, 0.2)
    model.save_pretrained(folder, **save_kwargs)
    return model


def _tokens():
    return torch.randint(0, TINY['vocab_size'], (2, 20), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize('tie,sharded', [(True, False), (False, True)])
def test_llama_folder_gives_the_logits_of_transformers(tmp_path, tie, sharded):
    save = dict(max_shard_size='20KB') if sharded else {}
    reference = _save_llama(tmp_path, tie, **save)
    assert (tmp_path / 'model.safetensors.index.json').exists() == sharded
    tower = MODELS.build(dict(type='HFLlamaTower', folder=str(tmp_path))).eval()
    assert isinstance(tower, CausalDecoderTower)
    assert tower.layers[0].attn.num_kv_heads == 2 and tower.norm.eps == 1e-5
    assert (tower.lm_head is None) == tie
    tokens = _tokens()
    with torch.no_grad():
        expected = reference(tokens).logits
        got = tower(tokens)['logits']
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # The RoPE base matters: the default base gives other logits.
    other = CausalDecoderTower(vocab_size=61, dim=32, depth=3, num_heads=4, num_kv_heads=2,
                               ffn_dim=56, max_len=64, tie_embeddings=tie, norm_eps=1e-5,
                               hf_checkpoint=str(tmp_path)).eval()
    with torch.no_grad():
        assert (other(tokens)['logits'] - expected).abs().max() > 1e-3


def test_llama_tower_freezes_and_fuses_as_any_tower(tmp_path):
    reference = _save_llama(tmp_path, tie=True)
    tower = hf_llama_tower(str(tmp_path), frozen=True, max_len=32)
    assert not any(p.requires_grad for p in tower.parameters()) and tower.rope.max_len == 32
    # As the output tower of a Zipper with closed gates, it is the Llama LM.
    decoder = ZipperDecoder(
        towers=dict(text=dict(type='HFLlamaTower', folder=str(tmp_path), frozen=True),
                    speech=dict(type='CausalDecoderTower', vocab_size=20, dim=16, depth=2,
                                num_heads=2, ffn_dim=32)),
        links=[dict(query='text', context='speech', every=1)]).eval()
    tokens = _tokens()
    speech = torch.randint(0, 20, (2, 9))
    with torch.no_grad():
        fused = decoder(dict(text=tokens, speech=speech))['text']['logits']
        torch.testing.assert_close(fused, reference(tokens).logits, rtol=0, atol=1e-5)


def test_non_llama_or_unsupported_configs_are_named(tmp_path):
    gpt2 = tmp_path / 'gpt2'
    transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2).save_pretrained(gpt2)
    with pytest.raises(ValueError, match=r"gpt2/config.json: model_type is 'gpt2', expected "
                                         r"'llama'"):
        hf_llama_tower(str(gpt2))
    cases = [(dict(attention_bias=True), 'attention_bias=true'),
             (dict(hidden_act='gelu'), "hidden_act='gelu'"),
             (dict(rope_scaling=dict(rope_type='linear', factor=2.0)), "RoPE type 'linear'")]
    for i, (change, message) in enumerate(cases):
        folder = tmp_path / f'case{i}'
        transformers.LlamaConfig(**{**TINY, **change}).save_pretrained(folder)
        with pytest.raises(ValueError, match=f'case{i}/config.json: .*{message}'):
            hf_llama_tower(str(folder))
    with pytest.raises(FileNotFoundError, match='no config.json'):
        hf_llama_tower(str(tmp_path / 'empty'))
    # A config without weights, and weights that do not fit the config.
    folder = tmp_path / 'case0'
    config = json.loads((folder / 'config.json').read_text())
    config['attention_bias'] = False
    (folder / 'config.json').write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match='neither model.safetensors nor'):
        hf_llama_tower(str(folder))
    _save_llama(tmp_path / 'weights', tie=True)
    config['hidden_size'] = 48
    config['head_dim'] = 12
    (tmp_path / 'weights' / 'config.json').write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match='model.safetensors does not fit .*shape mismatches'):
        hf_llama_tower(str(tmp_path / 'weights'))
