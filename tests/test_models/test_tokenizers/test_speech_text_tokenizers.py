"""Character tokenizer and k-means speech units (fitted on generated SynthSpeech)."""
import json
import logging

import numpy as np
import pytest
import torch

from mmfusion.models.common.sequence import BOS, EOS, UNK
from mmfusion.models.tokenizers import CharTokenizer, SpeechUnitTokenizer

from tools.dataset_converters.generate_synth_speech import main as generate
from tools.misc.fit_speech_units import main as fit_units
from tools.misc.fit_speech_units import read_manifest


@pytest.fixture(scope='module')
def speech_root(tmp_path_factory):
    out, _ = generate(['--out', str(tmp_path_factory.mktemp('speech')), '--num-train', '16',
                       '--num-val', '4', '--num-text', '10'])
    return out


def _waves(root, split='train'):
    import soundfile
    return [soundfile.read(item['audio'], dtype='float32')[0]
            for item in read_manifest(f'{root}/{split}.jsonl')]


def test_char_tokenizer_round_trip_and_documented_oov_handling(monkeypatch):
    tok = CharTokenizer()
    ids = tok.encode('The  Red Circle')
    assert ids[0] == BOS and ids[-1] == EOS and tok.vocab_size == 4 + 28
    assert tok.decode(ids) == 'the red circle'
    assert tok.decode(ids[1:4] + [EOS] + ids[4:]) == 'the'  # stops at </s>
    # Out-of-alphabet characters: dropped with one warning per character...
    warnings = []
    monkeypatch.setattr('mmfusion.models.tokenizers.char_tokenizer.print_log',
                        lambda msg, **kw: warnings.append((msg, kw['level'])))
    assert tok.decode(tok.encode('4 red stars!')) == 'red stars'
    tok.encode('5 blue stars!')
    tok.encode('4 blue stars!')
    assert [level for _, level in warnings] == [logging.WARNING] * 2
    assert "['!', '4']" in warnings[0][0] and "['5']" in warnings[1][0]
    # ... or kept as <unk>, or refused.
    assert CharTokenizer(oov='unk').encode('a1', bos=False, eos=False) == [4, UNK]
    with pytest.raises(ValueError, match=r"characters \['1'\] are not in the tokenizer alphabet"):
        CharTokenizer(oov='error').encode('a1')
    with pytest.raises(ValueError, match='outside the vocabulary'):
        tok.decode([99])


def test_speech_units_match_sklearn_and_survive_save_load(speech_root, tmp_path):
    from sklearn.metrics import pairwise_distances_argmin
    waves = _waves(speech_root)
    tok = SpeechUnitTokenizer(num_units=12)
    summary = tok.fit(waves, seed=0)
    assert summary['units_used'] == 12
    # 20 ms frames: about 50 per second.
    frames = tok.frame_units(waves[0])
    assert abs(len(frames) - len(waves[0]) / 16000 * 50) <= 3
    # Nearest centroid, computed independently by scikit-learn on the same features.
    feats = tok.features(waves[0]).numpy()
    expected = pairwise_distances_argmin(feats, tok.centroids.numpy())
    assert np.array_equal(frames.numpy(), expected)
    units = tok.quantize(waves[0])
    assert (units[1:] != units[:-1]).all() and units.max() < 12
    assert torch.equal(units, torch.unique_consecutive(frames))
    # An 8 kHz copy is resampled to the tokenizer's rate and gives similar units.
    import torchaudio.functional as AF
    wave8k = AF.resample(torch.from_numpy(waves[0]), 16000, 8000)
    from8k = tok.frame_units(wave8k, sample_rate=8000)
    n = min(len(from8k), len(frames))
    assert abs(len(from8k) - len(frames)) <= 1
    assert (from8k[:n] == frames[:n]).float().mean() > 0.5
    path = str(tmp_path / 'units.pth')
    tok.save(path)
    loaded = SpeechUnitTokenizer(num_units=12, checkpoint=path)
    assert torch.equal(loaded.quantize(waves[1]), tok.quantize(waves[1]))
    with pytest.raises(ValueError, match='has 12 units at 16000 Hz .global normalisation.; this tokenizer expects 8'):
        SpeechUnitTokenizer(num_units=8, checkpoint=path)
    with pytest.raises(RuntimeError, match='not fitted'):
        SpeechUnitTokenizer(num_units=8).quantize(waves[0])
    with pytest.raises(ValueError, match='shorter than one'):
        tok.quantize(np.zeros(100, dtype=np.float32))


def test_fit_tool_writes_a_loadable_tokenizer(speech_root, tmp_path):
    out = str(tmp_path / 'u.pth')
    report = fit_units([f'{speech_root}/train.jsonl', '--num-units', '8', '--out', out])
    assert report['utterances'] == 16 and report['units_used'] == 8
    assert 5 < report['units_per_second'] < 50
    tok = SpeechUnitTokenizer(num_units=8, checkpoint=out)
    assert len(tok.quantize(_waves(speech_root, 'val')[0])) > 5
    bad = tmp_path / 'bad.jsonl'
    bad.write_text(json.dumps(dict(text='no audio')) + '\n')
    with pytest.raises(KeyError, match='bad.jsonl:1: no "audio" field'):
        fit_units([str(bad), '--out', out])


def test_utterance_normalisation_removes_a_gain_change(speech_root):
    """Per-utterance standardisation: a louder copy (a constant log-mel offset)
    gets the same units; the file records the normalisation."""
    waves = _waves(speech_root)
    tok = SpeechUnitTokenizer(num_units=8, normalise='utterance')
    tok.fit(waves)
    feats = tok.features(waves[0])
    assert feats.shape[1] == 80
    torch.testing.assert_close(tok.log_mel(waves[0]).mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    louder = torch.from_numpy(waves[0]) * 3
    assert (tok.frame_units(louder) == tok.frame_units(waves[0])).float().mean() > 0.95
    with pytest.raises(ValueError, match="normalise must be 'global' or 'utterance'"):
        SpeechUnitTokenizer(normalise='speaker')


def test_units_to_audio_resynthesises_what_the_units_describe(speech_root):
    waves = _waves(speech_root)
    tok = SpeechUnitTokenizer(num_units=12)
    tok.fit(waves, seed=0)
    units = tok.quantize(waves[0])
    # The mel lookup is each unit's de-standardised centroid, repeated.
    log_mel = tok.units_to_log_mel(units, frames_per_unit=2)
    assert log_mel.shape == (2 * len(units), 80)
    torch.testing.assert_close(log_mel[2], tok.centroids[units[1]] * tok.std + tok.mean)
    assert tok.units_to_log_mel(units[:10], frames_per_unit=1.5).shape[0] == 15
    # Griffin-Lim audio: the duration the frames imply, and re-encoding it
    # finds the looked-up units far above chance (1/12).
    wave = tok.units_to_wave(units, frames_per_unit=2)
    assert abs(wave.numel() - 2 * len(units) * 320) <= 400
    assert wave.abs().max() <= 0.9 + 1e-6
    frames = tok.frame_units(wave)
    want = units.repeat_interleave(2)[:len(frames)]
    assert (frames == want).float().mean() > 0.3
    with pytest.raises(ValueError, match=r'units must lie in \[0, 12\)'):
        tok.units_to_log_mel(torch.tensor([3, 12]))
