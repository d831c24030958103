"""SynthSpeech: paired speech and text, synthesised offline with espeak-ng.

Sentences describe SynthShapes scenes ("the small red circle is left of the
blue star"), from a grammar over the SynthShapes vocabulary, so the speech
and text tasks share one small world with the vision tasks. Each sentence is
spoken by one espeak-ng voice (a regional English voice plus a voice
variant) at a random speed and pitch, resampled to 16 kHz mono and written as
16-bit PCM WAV. The validation split uses voices never heard in training
(held-out regional voices *and* variants), which is where ASR is evaluated.

Layout::

    OUT/wavs/{train,val}/NNNNNN.wav
    OUT/{train,val}.jsonl     one utterance per line: audio (relative path),
                              text, voice, speed (words/min), pitch (0-99),
                              duration (s), sample_rate
    OUT/text_corpus.txt       text-only sentences for text-tower pretraining
    OUT/meta.json             counts, voices of each split, sample rate, seed

Usage::

    python tools/dataset_converters/generate_synth_speech.py --out data/synth_speech \\
        --num-train 2000 --num-val 200 --num-text 20000

Needs the ``espeak-ng`` program (Debian/Ubuntu: ``apt-get install espeak-ng``).
"""
import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmfusion.datasets.synthshapes_meta import COLOURS, SHAPES, SIZES, STUFF_CLASSES  # noqa: E402

from tools.dataset_converters.generated_dataset import progress  # noqa: E402

SAMPLE_RATE = 16000
# espeak-ng's own (non-MBROLA) English voices, and voice variants.
TRAIN_VOICES = ['en-us', 'en-gb', 'en-gb-scotland', 'en-gb-x-rp', 'en-gb-x-gbclan',
                'en-gb-x-gbcwmd']
TRAIN_VARIANTS = ['m1', 'm2', 'm3', 'm4', 'f1', 'f2', 'f3']
HELD_OUT_VOICES = ['en-029', 'en-us-nyc']
HELD_OUT_VARIANTS = ['m5', 'f4']
RELATIONS = ['left of', 'right of', 'above', 'below', 'next to']


def sentence(rng: np.random.Generator) -> str:
    """One sentence of the SynthShapes world, from one of four forms."""
    colours, shapes = list(COLOURS), SHAPES

    def thing(article: str = 'the') -> str:
        size = f'{rng.choice(SIZES)} ' if rng.random() < 0.5 else ''
        return f'{article} {size}{rng.choice(colours)} {rng.choice(shapes)}'

    form = rng.integers(4)
    if form == 0:
        return f'{thing()} is {rng.choice(RELATIONS)} {thing()}'
    if form == 1:
        return f"{thing('a')} on a {rng.choice(STUFF_CLASSES)}"
    if form == 2:
        count = int(rng.integers(2, 5))
        return f"{['', '', 'two', 'three', 'four'][count]} {rng.choice(colours)} " \
               f'{rng.choice(shapes)}s'
    return f'{thing()} and {thing()}'


def voices(split: str) -> List[str]:
    names, variants = ((TRAIN_VOICES, TRAIN_VARIANTS) if split == 'train'
                       else (HELD_OUT_VOICES, HELD_OUT_VARIANTS))
    return [f'{n}+{v}' for n in names for v in variants]


def check_espeak() -> str:
    exe = shutil.which('espeak-ng')
    if exe is None:
        raise RuntimeError('espeak-ng not found: install it (apt-get install espeak-ng); '
                           'SynthSpeech is synthesised with it')
    return exe


def synthesise(exe: str, text: str, voice: str, speed: int, pitch: int,
               tmp_wav: str) -> np.ndarray:
    """espeak-ng -> float32 mono waveform at SAMPLE_RATE."""
    import soundfile
    import torch
    import torchaudio.functional as AF
    proc = subprocess.run([exe, '-v', voice, '-s', str(speed), '-p', str(pitch), '-w', tmp_wav,
                           text], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'espeak-ng failed for voice {voice!r}: {proc.stderr.strip()}')
    wave, rate = soundfile.read(tmp_wav, dtype='float32', always_2d=True)
    wave = torch.from_numpy(wave.mean(axis=1))
    if rate != SAMPLE_RATE:
        wave = AF.resample(wave, rate, SAMPLE_RATE)
    return wave.numpy()


def generate(out: str, counts: Dict[str, int], num_text: int, seed: int) -> Dict:
    import soundfile
    exe = check_espeak()
    rng = np.random.default_rng(seed)
    shutil.rmtree(osp.join(out, 'wavs'), ignore_errors=True)
    summary: Dict = dict(generator='generate_synth_speech.py', seed=seed,
                         sample_rate=SAMPLE_RATE, splits={})
    with tempfile.TemporaryDirectory() as tmp:
        tmp_wav = osp.join(tmp, 'utt.wav')
        for split, count in counts.items():
            split_voices = voices(split)
            os.makedirs(osp.join(out, 'wavs', split), exist_ok=True)
            total = 0.0
            with open(osp.join(out, f'{split}.jsonl'), 'w') as f:
                for i in progress(count, split):
                    text = sentence(rng)
                    voice = str(rng.choice(split_voices))
                    speed, pitch = int(rng.integers(130, 201)), int(rng.integers(25, 76))
                    wave = synthesise(exe, text, voice, speed, pitch, tmp_wav)
                    rel = f'wavs/{split}/{i:06d}.wav'
                    soundfile.write(osp.join(out, rel), wave, SAMPLE_RATE, subtype='PCM_16')
                    duration = len(wave) / SAMPLE_RATE
                    total += duration
                    f.write(json.dumps(dict(audio=rel, text=text, voice=voice, speed=speed,
                                            pitch=pitch, duration=round(duration, 3),
                                            sample_rate=SAMPLE_RATE)) + '\n')
                    if (i + 1) % 500 == 0:
                        print(f'{split}: {i + 1}/{count} utterances', flush=True)
            summary['splits'][split] = dict(utterances=count, hours=round(total / 3600, 3),
                                            voices=split_voices)
    with open(osp.join(out, 'text_corpus.txt'), 'w') as f:
        f.writelines(sentence(rng) + '\n' for _ in range(num_text))
    summary['text_corpus'] = num_text
    with open(osp.join(out, 'meta.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    return summary


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Generate SynthSpeech (espeak-ng)')
    parser.add_argument('--out', default='data/synth_speech')
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=200,
                        help='utterances by held-out voices')
    parser.add_argument('--num-text', type=int, default=20000,
                        help='text-only sentences for text-tower pretraining')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Tuple[str, Dict]:
    args = parse_args(argv)
    start = time.perf_counter()
    summary = generate(args.out, dict(train=args.num_train, val=args.num_val), args.num_text,
                       args.seed)
    report = dict(out=args.out, seconds=round(time.perf_counter() - start, 1),
                  splits={k: dict(utterances=v['utterances'], hours=v['hours'])
                          for k, v in summary['splits'].items()})
    print(json.dumps(report), flush=True)
    return args.out, summary


if __name__ == '__main__':
    main()
