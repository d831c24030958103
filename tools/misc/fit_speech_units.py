"""Fit the discrete speech-unit tokenizer on the utterances of a JSONL
manifest and save it for the speech tower: k-means over log-mel frames
(default), or over a layer of a self-supervised encoder (``--features ssl``:
HuBERT/wav2vec2 through torchaudio, HuBERT-style units).

    python tools/misc/fit_speech_units.py data/synth_speech/train.jsonl \\
        --num-units 64 --out work_dirs/speech_units/units64.pth
    python tools/misc/fit_speech_units.py data/synth_speech/train.jsonl \\
        --features ssl --ssl-arch hubert_base --ssl-checkpoint hubert_base.pth \\
        --ssl-layer 6 --out work_dirs/speech_units/hubert_units64.pth

Without ``--ssl-arch`` the encoder is a tiny HuBERT-shaped model
(:data:`TINY_HUBERT`) at random init (seeded by ``--seed``; its weights are
saved with the units). Each manifest line needs ``audio`` (a path, relative
to the manifest's folder unless absolute). Prints a JSON summary:
utterances, frames clustered, units used, and units per second after
deduplication.
"""
import argparse
import json
import os.path as osp
import time

import torch
from mmengine.config import Config

from mmfusion.datasets.transforms import LoadAudioFromFile
from mmfusion.models.tokenizers import SpeechUnitTokenizer, SSLSpeechUnitTokenizer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: HuBERT Base's layout (group-norm conv extractor, 400-sample receptive field
#: every 320 samples, post-norm transformer) at a CPU-tiny width and depth: the
#: encoder of the Zipper configs' ``hubert_unit_tokenizer``, read from there so
#: that the units fitted here are the ones those configs expect.
TINY_HUBERT = Config.fromfile(
    osp.join(REPO, 'configs', '_base_', 'models', 'zipper_tiny.py')
).hubert_unit_tokenizer.encoder.arch.to_dict()


def read_manifest(path: str, limit: int = 0) -> list:
    root = osp.dirname(osp.abspath(path))
    items = []
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            item = json.loads(line)
            if 'audio' not in item:
                raise KeyError(f'{path}:{line_no}: no "audio" field (keys: {sorted(item)})')
            item['audio'] = osp.join(root, item['audio'])
            items.append(item)
            if limit and len(items) == limit:
                break
    if not items:
        raise ValueError(f'{path}: no utterances')
    return items


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('manifest')
    parser.add_argument('--num-units', type=int, default=64)
    parser.add_argument('--max-utterances', type=int, default=0, help='0: all')
    parser.add_argument('--max-frames', type=int, default=200_000)
    parser.add_argument('--sample-rate', type=int, default=16000)
    parser.add_argument('--normalise', choices=['global', 'utterance'], default='global',
                        help='frame standardisation (see SpeechUnitTokenizer)')
    parser.add_argument('--features', choices=['log-mel', 'ssl'], default='log-mel')
    parser.add_argument('--ssl-arch', default=None,
                        help='a torchaudio factory name (hubert_base, wav2vec2_base, ...) or a '
                             'JSON dict of torchaudio.models.wav2vec2_model kwargs; default: '
                             'a tiny HuBERT at random init')
    parser.add_argument('--ssl-checkpoint', default=None,
                        help='weights for --ssl-arch (any format Wav2Vec2Encoder reads)')
    parser.add_argument('--ssl-layer', type=int, default=1,
                        help='transformer layer whose output is clustered (1-based)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    items = read_manifest(args.manifest, args.max_utterances)
    load = LoadAudioFromFile(sample_rate=args.sample_rate)
    waves = [load(dict(audio_path=item['audio']))['audio'] for item in items]
    common = dict(num_units=args.num_units, sample_rate=args.sample_rate,
                  normalise=args.normalise)
    if args.features == 'ssl':
        torch.manual_seed(args.seed)  # a random-init encoder is part of the units
        arch = args.ssl_arch or TINY_HUBERT
        if isinstance(arch, str) and arch.lstrip().startswith('{'):
            arch = json.loads(arch)
        encoder = dict(type='Wav2Vec2Encoder', arch=arch, checkpoint=args.ssl_checkpoint)
        tokenizer = SSLSpeechUnitTokenizer(encoder, args.ssl_layer, **common)
    else:
        tokenizer = SpeechUnitTokenizer(**common)
    summary = tokenizer.fit(waves, max_frames=args.max_frames, seed=args.seed)
    seconds = sum(len(w) for w in waves) / args.sample_rate
    units = sum(len(tokenizer.quantize(w)) for w in waves)
    tokenizer.save(args.out)
    report = dict(out=args.out, utterances=len(items), audio_hours=round(seconds / 3600, 3),
                  units_per_second=round(units / seconds, 2),
                  features=args.features, seconds=round(time.perf_counter() - start, 1),
                  **summary)
    print(json.dumps(report), flush=True)
    return report


if __name__ == '__main__':
    main()
