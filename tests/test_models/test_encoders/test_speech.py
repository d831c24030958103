"""Speech encoders against torchaudio / transformers computed directly.

Every checkpoint is created here in its upstream format: a torchaudio state
dict, a transformers ``save_pretrained`` folder, and a fairseq checkpoint
whose keys are produced by inverting torchaudio's fairseq key map (torchaudio
ships no fairseq fixtures, and fairseq is not installed); the inversion is
checked key by key against torchaudio's own ``_map_key``.
"""
import argparse
import re

import numpy as np
import pytest
import torch
import torchaudio
from torchaudio.models import wav2vec2_model
from torchaudio.models.wav2vec2.utils.import_fairseq import _map_key

from mmfusion.models.data_preprocessors import AudioDataPreprocessor, MultiModalDataPreprocessor
from mmfusion.models.encoders.speech import (
    ConformerEncoder,
    LogMelFrontend,
    Wav2Vec2Encoder,
    lengths_to_padding_mask,
)
from mmfusion.registry import MODELS

# torchaudio.models.wav2vec2_model kwargs: a tiny pre-norm model whose conv
# feature extractor uses per-frame layer norm (like wav2vec2_large_lv60k).
TINY = dict(
    extractor_mode='layer_norm', extractor_conv_layer_config=[(16, 10, 5), (16, 3, 2), (16, 2, 2)],
    extractor_conv_bias=True, encoder_embed_dim=32, encoder_projection_dropout=0.0,
    encoder_pos_conv_kernel=16, encoder_pos_conv_groups=2, encoder_num_layers=2,
    encoder_num_heads=2, encoder_attention_dropout=0.0, encoder_ff_interm_features=64,
    encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=True,
    encoder_layer_drop=0.0)
# Same, but post-norm with a group-norm feature extractor (like wav2vec2_base).
TINY_GN = dict(TINY, extractor_mode='group_norm', extractor_conv_bias=False,
               encoder_layer_norm_first=False)
ATOL = 1e-5


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial values everywhere (norm weights are 1/0 at init)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=gen))
    return model.eval()


def _reference(cfg: dict, aux_num_out=None) -> torch.nn.Module:
    torch.manual_seed(0)
    return _randomize(wav2vec2_model(**cfg, aux_num_out=aux_num_out))


def _encoder_output(model: torch.nn.Module, wave, lengths=None) -> torch.Tensor:
    """The torchaudio encoder's final output, without the CTC head."""
    x, lengths = model.feature_extractor(wave, lengths)
    return model.encoder(x, lengths)


# -- torchaudio state dict ---------------------------------------------------
@pytest.mark.parametrize('cfg', [TINY, TINY_GN], ids=['prenorm-ln', 'postnorm-gn'])
def test_torchaudio_state_dict(tmp_path, cfg):
    ref = _reference(cfg, aux_num_out=5)  # a CTC head, as in ASR bundles: dropped
    path = str(tmp_path / 'tiny.pth')
    torch.save(ref.state_dict(), path)
    torch.manual_seed(123)  # the encoder's own init differs from the file
    enc = MODELS.build(dict(type='Wav2Vec2Encoder', arch=cfg, checkpoint=path))
    wave = torch.randn(2, 3000)
    with torch.no_grad():
        out = enc(wave)
        ref_feats, _ = ref.extract_features(wave)
        ref_last = _encoder_output(ref, wave)
    assert len(out['feats']) == 2
    for hyp, exp in zip(out['feats'], ref_feats):
        assert hyp.shape == (2, 149, 32) and _max_diff(hyp, exp) <= ATOL
    assert _max_diff(out['last'], ref_last) <= ATOL
    assert out['lengths'].tolist() == [149, 149] and not out['padding_mask'].any()
    assert enc.embed_dim == 32


def test_factory_names_and_errors(tmp_path):
    enc = Wav2Vec2Encoder(arch='hubert_base')  # torchaudio's builder; HuBERT is a Wav2Vec2Model
    assert type(enc.model).__name__ == 'Wav2Vec2Model'
    assert len(enc.model.encoder.transformer.layers) == 12
    with pytest.raises(ValueError, match=r"unknown arch 'wav2vec3'.*wav2vec2_base"):
        Wav2Vec2Encoder(arch='wav2vec3')
    with pytest.raises(TypeError, match='wav2vec2_model'):
        Wav2Vec2Encoder(arch=dict(TINY, bogus=1))
    path = str(tmp_path / 'other.pth')
    wider = wav2vec2_model(**dict(TINY, encoder_embed_dim=48), aux_num_out=None)
    torch.save(wider.state_dict(), path)
    with pytest.raises(RuntimeError, match=r'other\.pth.*arch'):
        Wav2Vec2Encoder(arch=TINY, checkpoint=path)


def test_frozen_by_default_and_trainable_layers():
    enc = Wav2Vec2Encoder(arch=TINY)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.model.training
    enc = Wav2Vec2Encoder(arch=TINY, trainable_modules=[r'model\.encoder\.transformer\.layers\.1'])
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith('model.encoder.transformer.layers.1.') for n in trainable)
    out = enc(torch.randn(1, 2000))
    out['last'].sum().backward()


# -- transformers folder ----------------------------------------------------
@pytest.mark.parametrize('kind', ['wav2vec2', 'wav2vec2-stable', 'hubert'])
def test_huggingface_folder(tmp_path, kind):
    transformers = pytest.importorskip('transformers')
    if kind == 'hubert':
        config_cls, model_cls = transformers.HubertConfig, transformers.HubertModel
    else:
        config_cls, model_cls = transformers.Wav2Vec2Config, transformers.Wav2Vec2Model
    stable = kind == 'wav2vec2-stable'
    config = config_cls(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=stable, feat_extract_norm='layer' if stable else 'group')
    torch.manual_seed(0)
    original = _randomize(model_cls(config))
    original.save_pretrained(str(tmp_path))
    torch.manual_seed(1)
    enc = Wav2Vec2Encoder(checkpoint=str(tmp_path))
    wave = torch.randn(2, 3000)
    with torch.no_grad():
        ref = original(wave, output_hidden_states=True)
        out = enc(wave)
    # torchaudio's own HF import test compares whole-model outputs with the
    # default float32 tolerance (atol 1e-5, rtol 1.3e-6) and per-layer
    # hidden states with atol 1e-4; the encoder output meets the tighter one.
    assert _max_diff(out['last'], ref.last_hidden_state) <= ATOL
    # HF's last hidden state of pre-norm models includes the final norm.
    per_layer = ref.hidden_states[1:-1] if stable else ref.hidden_states[1:]
    for hyp, exp in zip(out['feats'], per_layer):
        assert _max_diff(hyp, exp) <= 1e-4


# -- fairseq checkpoint -----------------------------------------------------
_LAYER = r'encoder\.transformer\.layers\.(\d+)\.'
_TO_FAIRSEQ = [  # torchaudio key -> fairseq key: the inverse of torchaudio's _map_key
    (r'feature_extractor\.conv_layers\.(\d+)\.conv\.', r'feature_extractor.conv_layers.\1.0.'),
    (r'encoder\.feature_projection\.projection\.', 'post_extract_proj.'),
    (r'encoder\.feature_projection\.layer_norm\.', 'layer_norm.'),
    (r'encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0',
     'encoder.pos_conv.0.weight_g'),
    (r'encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1',
     'encoder.pos_conv.0.weight_v'),
    (r'encoder\.transformer\.pos_conv_embed\.conv\.bias', 'encoder.pos_conv.0.bias'),
    (r'encoder\.transformer\.layer_norm\.', 'encoder.layer_norm.'),
    (_LAYER + r'attention\.', r'encoder.layers.\1.self_attn.'),
    (_LAYER + r'layer_norm\.', r'encoder.layers.\1.self_attn_layer_norm.'),
    (_LAYER + r'feed_forward\.intermediate_dense\.', r'encoder.layers.\1.fc1.'),
    (_LAYER + r'feed_forward\.output_dense\.', r'encoder.layers.\1.fc2.'),
    (_LAYER + r'final_layer_norm\.', r'encoder.layers.\1.final_layer_norm.'),
    (r'aux\.', 'proj.'),
]


def _to_fairseq_key(key: str, extractor_mode: str) -> str:
    # fairseq's conv block is Sequential(conv, dropout, norm): the group norm
    # (first layer only) sits at index 2, the layer norm in Sequential(T, LN, T) at 2.1.
    match = re.fullmatch(r'feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(\w+)', key)
    if match:
        index = '2' if extractor_mode == 'group_norm' else '2.1'
        return f'feature_extractor.conv_layers.{match.group(1)}.{index}.{match.group(2)}'
    for pattern, replacement in _TO_FAIRSEQ:
        new, count = re.subn('^' + pattern, replacement, key)
        if count:
            return new
    raise AssertionError(f'no fairseq name for {key}')


def _fairseq_state_dict(model: torch.nn.Module, extractor_mode: str) -> dict:
    state = {}
    for key, value in model.state_dict().items():
        fairseq_key = _to_fairseq_key(key, extractor_mode)
        # The inversion must be exact: torchaudio maps it back to the same key
        # (weight norm as weight_g/weight_v, which torch's load hook converts).
        expected = (key.replace('parametrizations.weight.original0', 'weight_g')
                    .replace('parametrizations.weight.original1', 'weight_v'))
        assert _map_key(fairseq_key) == expected
        state[fairseq_key] = value
    return state


@pytest.mark.parametrize('cfg', [TINY, TINY_GN], ids=['layer_norm', 'group_norm'])
def test_fairseq_pretraining_checkpoint(tmp_path, cfg):
    ref = _reference(cfg)
    state = _fairseq_state_dict(ref, cfg['extractor_mode'])
    # Pretraining-only modules, which torchaudio's key map skips.
    state.update({'mask_emb': torch.randn(32), 'quantizer.vars': torch.randn(1, 8, 4),
                  'quantizer.weight_proj.weight': torch.randn(8, 16),
                  'project_q.weight': torch.randn(8, 4), 'final_proj.weight': torch.randn(8, 32)})
    path = str(tmp_path / 'wav2vec_tiny.pt')
    # Newer fairseq stores its options as a plain dict (OmegaConf.to_container).
    torch.save({'model': state, 'cfg': {'model': {'_name': 'wav2vec2', 'encoder_embed_dim': 32}},
                'args': None, 'optimizer_history': [{'num_updates': 10}]}, path)
    enc = Wav2Vec2Encoder(arch=cfg, checkpoint=path)
    wave = torch.randn(2, 3000)
    with torch.no_grad():
        ref_feats, _ = ref.extract_features(wave)
        out = enc(wave)
    for hyp, exp in zip(out['feats'], ref_feats):
        assert _max_diff(hyp, exp) <= ATOL


def test_fairseq_finetuned_checkpoint_with_namespace_args(tmp_path):
    ref = _reference(TINY, aux_num_out=5)
    state = {'w2v_encoder.' + ('w2v_model.' + k if not k.startswith('proj.') else k): v
             for k, v in _fairseq_state_dict(ref, 'layer_norm').items()}
    path = str(tmp_path / 'wav2vec_tiny_ctc.pt')
    # Older fairseq pickles argparse.Namespace options.
    torch.save({'model': state, 'args': argparse.Namespace(arch='wav2vec_ctc', w2v_path='x.pt'),
                'cfg': None}, path)
    enc = Wav2Vec2Encoder(arch=TINY, checkpoint=path)
    wave = torch.randn(1, 2500)
    with torch.no_grad():
        assert _max_diff(enc(wave)['last'], _encoder_output(ref, wave)) <= ATOL

    bad = str(tmp_path / 'not_w2v.pt')
    torch.save({'model': {'decoder.embed_tokens.weight': torch.zeros(2)}}, bad)
    with pytest.raises(ValueError, match=r"not_w2v\.pt.*decoder\.embed_tokens"):
        Wav2Vec2Encoder(arch=TINY, checkpoint=bad)


def test_mmfusion_checkpoint_with_prefix(tmp_path):
    ref = _reference(TINY)
    path = str(tmp_path / 'epoch_1.pth')
    torch.save({'meta': {'epoch': 1}, 'state_dict': {f'speech.model.{k}': v
                                                     for k, v in ref.state_dict().items()}}, path)
    enc = Wav2Vec2Encoder(arch=TINY, checkpoint=path, prefix='speech.model.')
    wave = torch.randn(1, 2000)
    with torch.no_grad():
        assert _max_diff(enc(wave)['feats'][-1], ref.extract_features(wave)[0][-1]) <= ATOL
    with pytest.raises(KeyError, match=r"Wav2Vec2Encoder: no key in .*epoch_1\.pth starts with "
                                       r"prefix 'nothing\.'.*speech\.model\."):
        Wav2Vec2Encoder(arch=TINY, checkpoint=path, prefix='nothing.')


# -- padding -----------------------------------------------------------------
def test_padded_batch_matches_single_utterance():
    """Per-frame layer norm in the conv extractor: valid frames of the short
    utterance equal the utterance alone (padded frames are zeroed before the
    positional convolution and masked out of attention)."""
    enc = Wav2Vec2Encoder(arch=TINY)
    _randomize(enc.model)
    long_wave, short_wave = torch.randn(4000), torch.randn(2600)
    batch = torch.zeros(2, 4000)
    batch[0], batch[1, :2600] = long_wave, short_wave
    with torch.no_grad():
        out = enc(batch, torch.tensor([4000, 2600]))
        alone = enc(short_wave[None])
    frames = alone['last'].shape[1]
    assert out['lengths'].tolist() == [out['last'].shape[1], frames]
    padded = out['last'].shape[1] - frames
    assert out['padding_mask'][1].tolist() == [False] * frames + [True] * padded
    for hyp, exp in zip(out['feats'] + [out['last']], alone['feats'] + [alone['last']]):
        assert _max_diff(hyp[1, :frames], exp[0]) <= ATOL

    # The group-norm extractor normalises over all samples, padding included.
    enc_gn = Wav2Vec2Encoder(arch=TINY_GN)
    _randomize(enc_gn.model)
    with torch.no_grad():
        out = enc_gn(batch, torch.tensor([4000, 2600]))
        alone = enc_gn(short_wave[None])
    assert _max_diff(out['last'][1, :frames], alone['last'][0]) > 1e-3


def test_wavlm_runs_unpadded_and_refuses_lengths():
    cfg = dict(TINY, encoder_num_buckets=32, encoder_max_distance=64)
    torch.manual_seed(0)
    ref = _randomize(torchaudio.models.wavlm_model(**cfg, aux_num_out=None))
    enc = Wav2Vec2Encoder(arch=cfg)
    enc.model.load_state_dict(ref.state_dict())
    wave = torch.randn(2, 2000)
    with torch.no_grad():
        assert _max_diff(enc(wave)['feats'][-1], ref.extract_features(wave)[0][-1]) <= ATOL
    with pytest.raises(NotImplementedError, match='WavLM'):
        enc(wave, torch.tensor([2000, 1500]))


def test_lengths_to_padding_mask():
    mask = lengths_to_padding_mask(torch.tensor([3, 1]), 4)
    assert mask.tolist() == [[False, False, False, True], [False, True, True, True]]
    assert lengths_to_padding_mask(torch.tensor([2, 1])).shape == (2, 2)


# -- log-mel and Conformer -------------------------------------------------
def test_log_mel_matches_stft_and_filterbank():
    front = LogMelFrontend(sample_rate=16000, n_fft=400, hop_length=160, n_mels=40)
    wave = torch.randn(2, 4000)
    out = front(wave, torch.tensor([4000, 3000]))
    # The same features from torch.stft and torchaudio's filterbank function.
    spec = torch.stft(wave, 400, 160, window=torch.hann_window(400), center=True,
                      pad_mode='reflect', return_complex=True).abs() ** 2
    fbanks = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, 40, 16000)
    expected = torch.log(spec.transpose(1, 2) @ fbanks + 1e-6)
    assert out['feats'].shape == (2, 26, 40)
    assert _max_diff(out['feats'], expected) <= ATOL
    assert out['lengths'].tolist() == [26, 19]
    uncentred = LogMelFrontend(n_fft=400, hop_length=160, n_mels=40, center=False)
    assert uncentred(wave)['feats'].shape[1] == 23  # (4000 - 400) // 160 + 1
    assert uncentred.num_frames(torch.tensor([4000])).item() == 23


TINY_CONFORMER = dict(frontend=dict(n_mels=16), embed_dim=16, num_heads=2, ffn_dim=32,
                      num_layers=2, depthwise_conv_kernel_size=3, dropout=0.0)


def test_conformer_shapes_and_checkpoint(tmp_path):
    torch.manual_seed(0)
    enc = MODELS.build(dict(type='ConformerEncoder', **TINY_CONFORMER)).eval()
    assert all(p.requires_grad for p in enc.parameters())  # trained from scratch by default
    wave = torch.randn(2, 4000)
    with torch.no_grad():
        out = enc(wave, torch.tensor([4000, 2400]))
    # 4000 samples -> 26 mel frames -> 12 -> 5; 2400 -> 16 -> 7 -> 3.
    assert out['last'].shape == (2, 5, 16) and out['lengths'].tolist() == [5, 3]
    assert out['padding_mask'].tolist() == [[False] * 5, [False] * 3 + [True] * 2]
    # The same computation assembled from the parts.
    with torch.no_grad():
        mel = enc.frontend(wave, torch.tensor([4000, 2400]))
        x, lengths = enc.subsampling(mel['feats'], mel['lengths'])
        ref, _ = enc.conformer(x, lengths)
    assert _max_diff(out['last'], ref) <= ATOL

    # An mmfusion checkpoint without the frontend's fixed buffers, with a prefix.
    state = {f'speech.{k}': v for k, v in enc.state_dict().items() if not k.startswith('frontend.')}
    path = str(tmp_path / 'conformer.pth')
    torch.save({'state_dict': state}, path)
    torch.manual_seed(1)
    loaded = ConformerEncoder(**TINY_CONFORMER, checkpoint=path, prefix='speech.').eval()
    with torch.no_grad():
        assert _max_diff(loaded(wave, torch.tensor([4000, 2400]))['last'], out['last']) == 0
    torch.save({k[len('speech.'):]: v for k, v in state.items()
                if 'conformer_layers.1' not in k}, path)
    with pytest.raises(RuntimeError, match=r'conformer\.pth.*missing keys.*conformer_layers\.1'):
        ConformerEncoder(**TINY_CONFORMER, checkpoint=path)
    with pytest.raises(KeyError, match=r"ConformerEncoder: no key in .*conformer\.pth.*'speech\.'"):
        ConformerEncoder(**TINY_CONFORMER, checkpoint=path, prefix='speech.')
    with pytest.raises(ValueError, match='too short'):
        enc(torch.randn(1, 800))


@pytest.mark.parametrize('dtype', ['bf16', 'fp16'])
def test_conformer_frozen_dtype_keeps_float32_frontend(dtype):
    torch.manual_seed(0)
    ref = ConformerEncoder(**TINY_CONFORMER, frozen=True)
    low = ConformerEncoder(**TINY_CONFORMER, frozen=True, frozen_dtype=dtype)
    low.load_state_dict(ref.state_dict())
    low_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype]
    assert low.conformer.conformer_layers[0].ffn1.sequential[1].weight.dtype == low_dtype
    # The window and filterbank stay float32 and unrounded.
    for k, v in low.frontend.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, ref.frontend.state_dict()[k]), k
    wave, lengths = torch.randn(2, 4000), torch.tensor([4000, 2400])
    with torch.no_grad():
        out, expected = low(wave, lengths), ref(wave, lengths)
    assert out['last'].dtype == torch.float32 and out['lengths'].tolist() == [5, 3]
    assert torch.equal(out['padding_mask'], expected['padding_mask'])
    valid = ~expected['padding_mask']
    assert _max_diff(out['last'][valid], expected['last'][valid]) <= 0.1


# -- data preprocessor -------------------------------------------------------
def test_audio_data_preprocessor_pads_and_normalizes():
    rng = np.random.default_rng(0)
    waves = [rng.normal(0.3, 2.0, n).astype(np.float32) for n in (500, 320)]
    out = AudioDataPreprocessor()({'inputs': [torch.from_numpy(w) for w in waves]})
    assert out['inputs'].shape == (2, 500) and out['lengths'].tolist() == [500, 320]
    assert torch.equal(out['inputs'][1, :320], torch.from_numpy(waves[1]))
    assert not out['inputs'][1, 320:].any()

    normed = AudioDataPreprocessor(normalize=True)({'inputs': [torch.from_numpy(w) for w in waves]})
    transformers = pytest.importorskip('transformers')
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, padding_value=0.0,
                                                      return_attention_mask=True)
    expected = extractor(waves, sampling_rate=16000, padding=True, return_tensors='np')
    assert np.abs(normed['inputs'].numpy() - expected['input_values']).max() <= 1e-5

    with pytest.raises(ValueError, match=r'item 0 is \(2, 100\).*mono'):
        AudioDataPreprocessor()({'inputs': [torch.zeros(2, 100)]})


def test_multimodal_preprocessor_feeds_encoder():
    pre = MultiModalDataPreprocessor(audio=dict(type='AudioDataPreprocessor'))
    batch = pre({'inputs': {'audio': [torch.randn(3000), torch.randn(2000)]}})
    assert batch['inputs']['audio_lengths'].tolist() == [3000, 2000]
    out = Wav2Vec2Encoder(arch=TINY)(batch['inputs']['audio'], batch['inputs']['audio_lengths'])
    assert out['lengths'].tolist() == [149, 99]
