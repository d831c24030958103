"""Speech demos of a trained Zipper model: a command line over
:class:`~mmfusion.apis.ASRInferencer` and :class:`~mmfusion.apis.TTSInferencer`.

ASR: print the transcript of a speech file and write its spectrogram with the
transcript drawn on it::

    python demo/audio_demo.py asr CONFIG CKPT speech.wav [--out-file spec.png]

Any file soundfile reads (WAV, FLAC, OGG); other sample rates are resampled to
the model's 16 kHz and stereo is mixed to mono (the ``LoadAudioFromFile``
transform the configs use). An empty or unreadable file fails naming it.

TTS: synthesise speech units from text and write them as audio (mel lookup of
the units + Griffin-Lim, ``SpeechUnitTokenizer.units_to_wave``)::

    python demo/audio_demo.py tts CONFIG CKPT "the red circle" --out out.wav

Characters outside the text tokenizer's alphabet are handled as the
tokenizer documents (``CharTokenizer``: dropped with a warning by default).
"""
import argparse
from typing import Optional

import mmcv
import numpy as np
from mmengine.config import DictAction

from mmfusion.apis import ASRInferencer, TTSInferencer
from mmfusion.apis.sequence_inferencers import log_mel_image
from mmfusion.utils import register_all_modules
from mmfusion.utils.compile import add_compile_args, compile_arg


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Zipper ASR / TTS demo')
    sub = parser.add_subparsers(dest='task', required=True)
    asr = sub.add_parser('asr', help='transcribe a speech file')
    tts = sub.add_parser('tts', help='speak a text')
    for p in (asr, tts):
        p.add_argument('config')
        p.add_argument('checkpoint')
        p.add_argument('--device', default='cpu')
        p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                       help='override config settings, e.g. model.max_new_tokens=60')
        add_compile_args(p, 'inference')
    asr.add_argument('audio', help='speech file (WAV, FLAC, OGG, ...)')
    asr.add_argument('--out-file', default=None,
                     help='spectrogram PNG with the transcript (default: next to nothing)')
    tts.add_argument('text')
    tts.add_argument('--out', required=True, help='WAV file to write')
    tts.add_argument('--frames-per-unit', type=float, default=2.0,
                     help='20 ms frames per (deduplicated) unit; SynthSpeech averages 2.1')
    return parser.parse_args(argv)


def spectrogram_image(wave: np.ndarray, model, height: int = 240) -> np.ndarray:
    """RGB uint8 image of the log-mel spectrogram (low frequencies at the
    bottom, 4 pixels per 20 ms frame)."""
    return log_mel_image(wave, model.unit_tokenizer, height)


def run_asr(args) -> str:
    asr = ASRInferencer(args.config, args.checkpoint, args.device, args.cfg_options,
                        show_progress=False, compile=compile_arg(args))
    result = asr(args.audio, return_vis=bool(args.out_file))
    text = result['predictions'][0]['text']
    print(text)
    if args.out_file:
        mmcv.imwrite(mmcv.rgb2bgr(result['visualization'][0]), args.out_file)
        print(f'spectrogram with the transcript: {args.out_file}')
    return text


def run_tts(args) -> Optional[np.ndarray]:
    tts = TTSInferencer(args.config, args.checkpoint, args.device, args.cfg_options,
                        show_progress=False, compile=compile_arg(args))
    result = tts(args.text, frames_per_unit=args.frames_per_unit)
    wave, pred = result['visualization'][0], result['predictions'][0]
    if wave is None:
        raise ValueError(f'the model produced no speech units for {args.text!r}')
    tts.save_visualization(wave, args.out)
    print(f'{pred["num_units"]} units, {wave.size / pred["sample_rate"]:.2f} s: {args.out}')
    return wave


def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    return run_asr(args) if args.task == 'asr' else run_tts(args)


if __name__ == '__main__':
    main()
