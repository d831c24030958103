"""tools/analysis_tools/zipper_tts_roundtrip.py on random-weight Zipper TTS
and ASR models over a few generated utterances."""
import json
import os.path as osp

import pytest
import soundfile
import torch

from tests.conftest import REPO
from tools.analysis_tools.zipper_tts_roundtrip import main as roundtrip
from tools.dataset_converters.generate_synth_speech import main as generate

pytestmark = pytest.mark.usefixtures('one_thread')

ASR = osp.join(REPO, 'configs/zipper/zipper_asr-rope_frozen-text-tiny_1xb16-1500it_synth-speech.py')
TTS = osp.join(REPO, 'configs/zipper/zipper_tts-rope_tiny_1xb16-1500it_synth-speech.py')


def _checkpoint(config, opts, path, seed):
    from mmfusion.apis import init_model
    torch.manual_seed(seed)
    model = init_model(config, None, cfg_options=opts)
    for block in model.decoder.cross_attn.values():
        block.gate.data.fill_(1.0)  # let the output depend on the other tower
    torch.save(dict(state_dict=model.state_dict()), path)
    return model


def test_roundtrip_scores_the_asr_reading_of_the_tts_output(fitted_units, tmp_path):
    from mmfusion.utils import register_all_modules
    register_all_modules()
    data, _ = generate(['--out', str(tmp_path / 'speech'), '--num-train', '1',
                        '--num-val', '3', '--num-text', '1'])
    opts = {'model.unit_tokenizer.checkpoint': fitted_units, 'model.max_new_tokens': 8,
            'test_dataloader.dataset.data_root': data, 'test_dataloader.batch_size': 2}
    tts = _checkpoint(TTS, opts, str(tmp_path / 'tts.pth'), seed=0).eval()
    asr = _checkpoint(ASR, opts, str(tmp_path / 'asr.pth'), seed=1).eval()
    out_dir = str(tmp_path / 'out')
    args = [TTS, str(tmp_path / 'tts.pth'), ASR, str(tmp_path / 'asr.pth'), '--out-dir', out_dir,
            '--save-wavs', '2', '--cfg-options', *[f'{k}={v}' for k, v in opts.items()]]
    results = roundtrip(args)
    assert results['utterances'] == 3
    with open(osp.join(out_dir, 'roundtrip.json')) as f:
        examples = json.load(f)['examples']
    # Each utterance alone (batch of one) gives the batched tool's transcripts.
    texts = [e['text'] for e in examples]
    with torch.no_grad():
        for text, example in zip(texts, examples):
            units = tts.predict(dict(text=[text]))[0].pred_units
            expected = asr.predict(dict(units=[units]))[0].pred_text if units.numel() else ''
            assert example['roundtrip_units'] == expected
    for name in ('asr_real', 'roundtrip_units', 'roundtrip_audio'):
        assert results[name]['WER'] >= 0 and results[name]['CER'] >= 0
    assert results['tts']['len_ratio'] > 0
    # The synthesised audio is written, 2 frames of 320 samples per unit.
    for i, text in enumerate(texts[:2]):
        wave, rate = soundfile.read(osp.join(out_dir, f'tts_{i:03d}.wav'))
        units = tts.predict(dict(text=[text]))[0].pred_units
        assert rate == 16000 and abs(len(wave) - 640 * len(units)) <= 400
    # Models that do not share their unit tokenizer cannot round-trip.
    from mmfusion.models.tokenizers import SpeechUnitTokenizer
    other = SpeechUnitTokenizer(num_units=64)
    other.fit([torch.randn(16000) for _ in range(2)])
    other.save(str(tmp_path / 'other.pth'))
    bad = list(args)
    asr_state = torch.load(str(tmp_path / 'asr.pth'))['state_dict']
    asr_state.update({f'unit_tokenizer.{k}': v for k, v in other.state_dict().items()})
    torch.save(dict(state_dict=asr_state), str(tmp_path / 'asr_other.pth'))
    bad[3] = str(tmp_path / 'asr_other.pth')
    with pytest.raises(ValueError, match='different speech unit tokenizers'):
        roundtrip(bad)
    bad = list(args)
    bad[0], bad[2] = ASR, TTS
    with pytest.raises(ValueError, match=r"the TTS model \(.*zipper_asr.*\) must be a Zipper with output='speech'"):
        roundtrip(bad)
