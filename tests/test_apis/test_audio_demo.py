"""demo/audio_demo.py: ASR (resampled / mixed input, spectrogram PNG with the
transcript) and TTS (a playable WAV) on Zipper models with random weights;
bad files fail naming them."""
import glob
import importlib.util
import os.path as osp

import numpy as np
import pytest
import soundfile
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures('one_thread')

_spec = importlib.util.spec_from_file_location('audio_demo', osp.join(REPO, 'demo/audio_demo.py'))
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)



def _zipper_config(output, context, pattern):
    """The first Zipper config running ``output`` from ``context`` (found by what
    it builds: the file names follow the configs' naming scheme, not this test)."""
    from mmengine.config import Config
    for path in sorted(glob.glob(osp.join(REPO, 'configs', 'zipper', pattern))):
        model = Config.fromfile(path).model
        if model.get('type') == 'Zipper' and (model.get('output'), model.get('context')) == \
                (output, context) and model.unit_tokenizer.type == 'SpeechUnitTokenizer':
            return path
    raise FileNotFoundError(f'no Zipper config for {output} from {context} in configs/zipper')


ASR = _zipper_config('text', 'speech', '*asr*.py')
TTS = _zipper_config('speech', 'text', '*tts*.py')


def _checkpoint(config, fitted_units, tmp_path):
    from mmfusion.apis import init_model
    from mmfusion.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = init_model(config, None,
                       cfg_options={'model.unit_tokenizer.checkpoint': fitted_units})
    path = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def _opts(fitted_units, max_new=12):
    return ['--cfg-options', f'model.unit_tokenizer.checkpoint={fitted_units}',
            f'model.max_new_tokens={max_new}']


def test_asr_transcribes_48k_stereo_and_draws_the_spectrogram(fitted_units, tmp_path, capsys):
    ckpt = _checkpoint(ASR, fitted_units, tmp_path)
    t = np.arange(48000) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1) * 0.3
    wav = str(tmp_path / 'stereo48k.wav')
    soundfile.write(wav, stereo.astype(np.float32), 48000)
    png = str(tmp_path / 'out' / 'spec.png')
    text = demo.main(['asr', ASR, ckpt, wav, '--out-file', png, *_opts(fitted_units)])
    assert isinstance(text, str) and text in capsys.readouterr().out
    import mmcv
    img = mmcv.imread(png)
    # 1 s at 16 kHz: (16000 - 512) // 320 + 1 = 49 frames (512-point FFT, 20 ms hop), 4 px each.
    assert img.shape[1] == 4 * 49 and img.shape[0] >= 80
    # Empty and unreadable files name themselves.
    empty = str(tmp_path / 'empty.wav')
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(Exception, match='empty.wav'):
        demo.main(['asr', ASR, ckpt, empty, *_opts(fitted_units)])
    broken = tmp_path / 'broken.wav'
    broken.write_bytes(b'RIFF0000WAVEjunk')
    with pytest.raises(Exception, match='broken.wav'):
        demo.main(['asr', ASR, ckpt, str(broken), *_opts(fitted_units)])
    with pytest.raises(ValueError, match="output='text'"):
        demo.main(['asr', TTS, ckpt, wav, *_opts(fitted_units)])


def test_tts_writes_a_playable_wav(fitted_units, tmp_path):
    ckpt = _checkpoint(TTS, fitted_units, tmp_path)
    out = str(tmp_path / 'tts' / 'out.wav')
    wave = demo.main(['tts', TTS, ckpt, 'the red circle', '--out', out,
                      '--frames-per-unit', '2', *_opts(fitted_units)])
    read, rate = soundfile.read(out, dtype='float32')
    assert rate == 16000 and read.ndim == 1 and len(read) == len(wave)
    # 2 frames of 320 samples per generated unit (at most 12).
    assert 320 * 2 <= len(read) <= 320 * 2 * 12 + 400
    assert soundfile.info(out).subtype == 'PCM_16'


LIBRIVOX = '/usr/share/pocketsphinx/test/data/librivox'


@pytest.mark.skipif(not osp.isdir(LIBRIVOX),
                    reason='Debian pocketsphinx-testdata (tools/install.sh installs it)')
def test_asr_runs_on_a_real_librivox_clip(fitted_units, tmp_path, capsys):
    """Real speech (a 16 kHz LibriVox recording): the demo transcribes it and
    draws all of it; no accuracy claim for random weights."""
    ckpt = _checkpoint(ASR, fitted_units, tmp_path)
    clip = osp.join(LIBRIVOX, 'sense_and_sensibility_01_austen_64kb-0880.wav')
    png = str(tmp_path / 'librivox.png')
    text = demo.main(['asr', ASR, ckpt, clip, '--out-file', png, *_opts(fitted_units)])
    assert isinstance(text, str) and text in capsys.readouterr().out
    import mmcv
    frames = (soundfile.info(clip).frames - 512) // 320 + 1
    assert mmcv.imread(png).shape[1] == 4 * frames
