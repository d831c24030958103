"""TTS round-trip WER: speak each test transcript with a Zipper TTS model,
transcribe the result with a Zipper ASR model, and score it against the text.

Three transcriptions per utterance, in the same run:

* ``asr_real``: the ASR model on the real recording (its own WER: the
  reference point);
* ``roundtrip_units``: the ASR model reading the TTS model's speech units
  directly (``inputs['units']``), so only the TTS model's errors count;
* ``roundtrip_audio``: the TTS units turned into audio (mel lookup +
  Griffin-Lim, ``SpeechUnitTokenizer.units_to_wave``) and transcribed from
  the waveform, as a listener of the demo's WAV would hear it.

Also the TTS model's unit error rate against the real recording's units
(``UnitErrorRateMetric``: ``UER``, ``len_ratio``). Both models must share one fitted unit
tokenizer. Prints a table, writes ``roundtrip.json`` (and the first
``--save-wavs`` synthesised utterances) to ``--out-dir``::

    python tools/analysis_tools/zipper_tts_roundtrip.py \\
        configs/zipper/zipper_tts-rope_tiny_1xb16-1500it_synth-speech.py TTS_CKPT \\
        configs/zipper/zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py ASR_CKPT
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List

import soundfile
import torch
from mmengine.config import DictAction
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from mmfusion.apis import init_model
from mmfusion.evaluation.metrics.speech_recognition_metric import UnitErrorRateMetric, error_rates
from mmfusion.models.common.sequence import pad_sequences
from mmfusion.models.zipper import check_zipper_task
from mmfusion.utils import register_all_modules


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Zipper TTS -> ASR round-trip WER')
    parser.add_argument('tts_config')
    parser.add_argument('tts_checkpoint')
    parser.add_argument('asr_config')
    parser.add_argument('asr_checkpoint')
    parser.add_argument('--max-utterances', type=int, default=None,
                        help='score only the first N test utterances (default: all)')
    parser.add_argument('--frames-per-unit', type=float, default=2.0,
                        help='20 ms frames per unit when rendering audio (SynthSpeech: 2.1)')
    parser.add_argument('--out-dir', default='work_dirs/zipper_tts_roundtrip')
    parser.add_argument('--save-wavs', type=int, default=4,
                        help='write the first N synthesised utterances as WAV')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='overrides for both configs, e.g. model.max_new_tokens=200')
    return parser.parse_args(argv)


def check_same_units(tts, asr) -> None:
    a, b = tts.unit_tokenizer, asr.unit_tokenizer
    if a is None or b is None:
        raise ValueError('both models need a speech unit tokenizer')
    same = a.num_units == b.num_units and all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    if not same:
        raise ValueError('the TTS and ASR models use different speech unit tokenizers; '
                         'a round trip needs one fitted unit file for both')


def render(tts, units: List[torch.Tensor], frames_per_unit: float) -> Dict[str, torch.Tensor]:
    """Waveforms of unit sequences, padded, as the ASR model's audio input."""
    waves = [tts.unit_tokenizer.units_to_wave(u, frames_per_unit) for u in units]
    audio, lengths = pad_sequences(waves, 0.0)
    return dict(audio=audio.float(), audio_lengths=lengths)


def roundtrip(args) -> Dict[str, Dict[str, float]]:
    tts = init_model(args.tts_config, args.tts_checkpoint, cfg_options=args.cfg_options)
    asr = init_model(args.asr_config, args.asr_checkpoint, cfg_options=args.cfg_options)
    check_zipper_task(tts, 'speech', 'text', f'the TTS model ({args.tts_config})')
    check_zipper_task(asr, 'text', 'speech', f'the ASR model ({args.asr_config})')
    check_same_units(tts, asr)
    loader = Runner.build_dataloader(tts.cfg.test_dataloader)
    total = len(loader.dataset)
    if args.max_utterances:
        total = min(total, args.max_utterances)
    refs, hyps = [], dict(asr_real=[], roundtrip_units=[], roundtrip_audio=[])
    unit_metric = UnitErrorRateMetric()
    os.makedirs(args.out_dir, exist_ok=True)
    saved = 0
    progress = ProgressBar(total)
    with torch.no_grad():
        for batch in loader:
            inputs = tts.data_preprocessor(batch, False)['inputs']
            keep = min(len(inputs['text']), total - len(refs))
            inputs = dict(text=inputs['text'][:keep], audio=inputs['audio'][:keep],
                          audio_lengths=inputs['audio_lengths'][:keep])
            spoken = tts.predict(inputs)
            unit_metric.process(None, spoken)
            units = [s.pred_units for s in spoken]
            # An utterance with no units has nothing to transcribe: an empty hypothesis.
            voiced = [i for i, u in enumerate(units) if u.numel()]
            via_units, via_audio = [], []
            if voiced:
                via_units = asr.predict(dict(units=[units[i] for i in voiced]))
                audio = render(tts, [units[i] for i in voiced], args.frames_per_unit)
                via_audio = asr.predict(audio)
            for name, samples in (('roundtrip_units', via_units), ('roundtrip_audio', via_audio)):
                texts = [''] * keep
                for i, s in zip(voiced, samples):
                    texts[i] = s.pred_text
                hyps[name] += texts
            hyps['asr_real'] += [s.pred_text for s in asr.predict(inputs)]
            refs += inputs['text']
            for j, i in enumerate(voiced):
                if saved >= args.save_wavs:
                    break
                wave = audio['audio'][j, :int(audio['audio_lengths'][j])].numpy()
                soundfile.write(osp.join(args.out_dir, f'tts_{saved:03d}.wav'), wave,
                                tts.unit_tokenizer.sample_rate, subtype='PCM_16')
                saved += 1
            progress.update(keep)
            if len(refs) >= total:
                break
    refs = [tts.text_tokenizer.normalise(r) for r in refs]
    results = {name: error_rates(h, refs) for name, h in hyps.items()}
    results['tts'] = unit_metric.compute_metrics(unit_metric.results)
    results['utterances'] = len(refs)
    with open(osp.join(args.out_dir, 'roundtrip.json'), 'w') as f:
        json.dump(dict(results=results, examples=[
            dict(text=r, **{k: h[i] for k, h in hyps.items()}) for i, r in enumerate(refs[:20])]),
            f, indent=2)
    return results


def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    results = roundtrip(args)
    print(f'\n{results["utterances"]} utterances '
          f'(TTS unit error rate {results["tts"]["UER"]:.1f}, '
          f'length ratio {results["tts"]["len_ratio"]:.2f})')
    print(f'{"transcribed":<18}{"WER":>7}{"CER":>7}')
    for name in ('asr_real', 'roundtrip_units', 'roundtrip_audio'):
        print(f'{name:<18}{results[name]["WER"]:>7.1f}{results[name]["CER"]:>7.1f}')
    print(f'written: {osp.join(args.out_dir, "roundtrip.json")}')
    return results


if __name__ == '__main__':
    main()
