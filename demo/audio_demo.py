"""Speech demos of a trained Zipper model.

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
import os
import os.path as osp
from typing import Optional

import numpy as np
import torch

from mmengine.config import DictAction

from mmfusion.apis import init_model
from mmfusion.datasets.transforms import LoadAudioFromFile
from mmfusion.models.zipper import check_zipper_task
from mmfusion.registry import VISUALIZERS
from mmfusion.structures import FusionDataSample
from mmfusion.utils import register_all_modules


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
    import matplotlib
    log_mel = model.unit_tokenizer.log_mel(torch.from_numpy(wave)).numpy().T  # (mels, frames)
    lo, hi = np.percentile(log_mel, [2, 99.5])
    scaled = np.clip((log_mel - lo) / max(hi - lo, 1e-6), 0, 1)[::-1]
    rgb = (matplotlib.colormaps['magma'](scaled)[..., :3] * 255).astype(np.uint8)
    reps = max(1, height // rgb.shape[0])
    return np.ascontiguousarray(rgb.repeat(reps, axis=0).repeat(4, axis=1))


def run_asr(args) -> str:
    model = init_model(args.config, args.checkpoint, args.device, args.cfg_options)
    check_zipper_task(model, 'text', 'speech', f'{args.task}: the model of {args.config}')
    rate = model.unit_tokenizer.sample_rate
    loaded = LoadAudioFromFile(sample_rate=rate)(dict(audio_path=args.audio))
    wave = loaded['audio']
    if wave.size == 0:
        raise ValueError(f'audio file {args.audio} holds no samples')
    inputs = dict(audio=torch.from_numpy(wave)[None].to(args.device),
                  audio_lengths=torch.tensor([wave.size], device=args.device))
    with torch.no_grad():
        sample = model.predict(inputs, [FusionDataSample()])[0]
    print(sample.pred_text)
    if args.out_file:
        visualizer = VISUALIZERS.build(dict(type='FusionVisualizer', name='audio_demo'))
        os.makedirs(osp.dirname(osp.abspath(args.out_file)), exist_ok=True)
        visualizer.add_datasample('asr', spectrogram_image(wave, model), sample,
                                  out_file=args.out_file)
        print(f'spectrogram with the transcript: {args.out_file}')
    return sample.pred_text


def run_tts(args) -> Optional[np.ndarray]:
    import soundfile
    model = init_model(args.config, args.checkpoint, args.device, args.cfg_options)
    check_zipper_task(model, 'speech', 'text', f'{args.task}: the model of {args.config}')
    with torch.no_grad():
        sample = model.predict(dict(text=[args.text]), [FusionDataSample()])[0]
    units = sample.pred_units
    if units.numel() == 0:
        raise ValueError(f'the model produced no speech units for {args.text!r}')
    wave = model.unit_tokenizer.units_to_wave(units, args.frames_per_unit).numpy()
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    soundfile.write(args.out, wave, model.unit_tokenizer.sample_rate, subtype='PCM_16')
    print(f'{len(units)} units, {wave.size / model.unit_tokenizer.sample_rate:.2f} s: {args.out}')
    return wave


def main(argv=None):
    args = parse_args(argv)
    register_all_modules()
    return run_asr(args) if args.task == 'asr' else run_tts(args)


if __name__ == '__main__':
    main()
