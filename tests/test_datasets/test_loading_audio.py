import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from mmengine.logging import MMLogger

from mmfusion.datasets.transforms import LoadAudioFromFile, PackFusionInputs
from mmfusion.registry import TRANSFORMS


def _tone(rate: int, seconds: float = 0.25, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def captured_warnings():
    """Records of mmengine's current logger at WARNING and above."""
    records = []

    class _Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = MMLogger.get_current_instance()
    handler = _Collect(level=logging.WARNING)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_reads_16k_mono_unchanged(tmp_path):
    wave = _tone(16000)
    path = str(tmp_path / 'a.wav')
    sf.write(path, wave, 16000, subtype='FLOAT')
    results = TRANSFORMS.build(dict(type='LoadAudioFromFile'))(dict(audio_path=path))
    assert results['audio'].dtype == np.float32 and results['audio'].shape == (4000,)
    np.testing.assert_array_equal(results['audio'], wave)
    assert (results['sample_rate'], results['ori_sample_rate'], results['audio_length']) == \
        (16000, 16000, 4000)
    packed = PackFusionInputs()(results)
    assert packed['inputs']['audio'].shape == (4000,)


def test_resamples_8k_and_warns_once(tmp_path, captured_warnings):
    wave = _tone(8000)
    paths = []
    for name in ('a.wav', 'b.wav'):
        paths.append(str(tmp_path / name))
        sf.write(paths[-1], wave, 8000, subtype='PCM_16')
    transform = LoadAudioFromFile(sample_rate=16000)
    outs = [transform(dict(audio_path=p)) for p in paths]
    for out in outs:
        assert out['audio'].shape == (2 * len(wave),)
        assert out['audio_length'] == 2 * len(wave)
        assert (out['sample_rate'], out['ori_sample_rate']) == (16000, 8000)
    warnings = [r.getMessage() for r in captured_warnings if 'resampling' in r.getMessage()]
    assert len(warnings) == 1 and '8000 Hz' in warnings[0]
    # A 440 Hz tone stays a 440 Hz tone: compare with the analytic signal at
    # 16 kHz (PCM_16 quantisation and the resampler's band edge allow ~1e-2).
    reference = _tone(16000)
    np.testing.assert_allclose(outs[0]['audio'][200:-200], reference[200:-200], atol=2e-2)
    # A new transform instance warns again.
    LoadAudioFromFile()(dict(audio_path=paths[0]))
    assert len([r for r in captured_warnings if 'resampling' in r.getMessage()]) == 2


def test_strict_rejects_other_rate(tmp_path):
    path = str(tmp_path / 'narrowband.wav')
    sf.write(path, _tone(8000), 8000)
    with pytest.raises(ValueError, match=r'narrowband\.wav.*8000 Hz.*16000 Hz'):
        LoadAudioFromFile(strict=True)(dict(audio_path=path))


def test_stereo_mixed_to_mono_or_kept(tmp_path):
    rng = np.random.default_rng(0)
    stereo = (rng.uniform(-0.5, 0.5, size=(3000, 2))).astype(np.float32)
    path = str(tmp_path / 'stereo.flac')
    sf.write(path, stereo, 16000, subtype='PCM_24')
    # Compare with the file as soundfile decodes it (FLAC is 24-bit PCM).
    decoded, _ = sf.read(path, dtype='float32')
    mono = LoadAudioFromFile()(dict(audio_path=path))['audio']
    assert mono.shape == (3000,)
    np.testing.assert_allclose(mono, decoded.mean(axis=1), atol=1e-7)
    kept = LoadAudioFromFile(mono=False)(dict(audio_path=path))
    assert kept['audio'].shape == (2, 3000)
    np.testing.assert_array_equal(kept['audio'], decoded.T)
    # Resampling keeps the channel axis.
    kept = LoadAudioFromFile(mono=False, sample_rate=8000)(dict(audio_path=path))
    assert kept['audio'].shape == (2, 1500)


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / 'corrupt.wav'
    bad.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ValueError, match=r'cannot decode audio file .*corrupt\.wav'):
        LoadAudioFromFile()(dict(audio_path=str(bad)))
    with pytest.raises(FileNotFoundError, match=r'missing\.wav'):
        LoadAudioFromFile()(dict(audio_path=str(tmp_path / 'missing.wav')))
    with pytest.raises(KeyError, match='audio_path'):
        LoadAudioFromFile()(dict(img_path='x.png'))


def test_custom_key(tmp_path):
    path = str(tmp_path / 'a.wav')
    sf.write(path, _tone(16000), 16000)
    out = LoadAudioFromFile(key='wav')(dict(wav=path))
    assert torch.from_numpy(out['audio']).shape == (4000,)
