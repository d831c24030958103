"""Fit the discrete speech-unit tokenizer (k-means over log-mel frames) on
the utterances of a JSONL manifest and save it for the speech tower.

    python tools/misc/fit_speech_units.py data/synth_speech/train.jsonl \\
        --num-units 64 --out work_dirs/speech_units/units64.pth

Each manifest line needs ``audio`` (a path, relative to the manifest's
folder unless absolute). Prints a JSON summary: utterances, frames
clustered, units used, and units per second after deduplication.
"""
import argparse
import json
import os.path as osp
import time

from mmfusion.datasets.transforms import LoadAudioFromFile
from mmfusion.models.tokenizers import SpeechUnitTokenizer


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
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    items = read_manifest(args.manifest, args.max_utterances)
    load = LoadAudioFromFile(sample_rate=args.sample_rate)
    waves = [load(dict(audio_path=item['audio']))['audio'] for item in items]
    tokenizer = SpeechUnitTokenizer(num_units=args.num_units, sample_rate=args.sample_rate,
                                    normalise=args.normalise)
    summary = tokenizer.fit(waves, max_frames=args.max_frames, seed=args.seed)
    seconds = sum(len(w) for w in waves) / args.sample_rate
    units = sum(len(tokenizer.quantize(w)) for w in waves)
    tokenizer.save(args.out)
    report = dict(out=args.out, utterances=len(items), audio_hours=round(seconds / 3600, 3),
                  units_per_second=round(units / seconds, 2),
                  seconds=round(time.perf_counter() - start, 1), **summary)
    print(json.dumps(report), flush=True)
    return report


if __name__ == '__main__':
    main()
