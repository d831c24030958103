"""How much of a speech-unit tokenizer's output survives a change of voice.

For each held-out utterance whose text a training utterance also has, the
unit error rate (UER, percent: edit distance over units / reference units,
as WER over words) between the two recordings (same text, different
voices), against the UER between the same held-out utterances and training
utterances of other texts (the level of unrelated speech). Units that
describe the words rather than the voice have a low same-text UER against
the other-text one. One JSON line per config::

    python tools/analysis_tools/speech_unit_invariance.py \\
        configs/zipper/zipper_speech-lm_tiny_1xb16-600it_synth-speech.py \\
        configs/zipper/zipper_speech-lm_hubert-units-tiny_1xb16-600it_synth-speech.py

Each config's ``model.unit_tokenizer`` (with its fitted ``checkpoint``) is used.
"""
import argparse
import json
from typing import Dict, List, Sequence, Tuple

from mmengine.config import Config

from mmfusion.datasets.transforms import LoadAudioFromFile
from mmfusion.evaluation.metrics.speech_recognition_metric import error_rates
from mmfusion.registry import TOKENIZERS
from mmfusion.utils import register_all_modules

from tools.misc.fit_speech_units import read_manifest


def text_pairs(train: Sequence[dict], val: Sequence[dict],
               max_pairs: int) -> Tuple[List[Tuple[dict, dict]], List[Tuple[dict, dict]]]:
    """(same-text pairs, other-text pairs): each held-out item with the first
    training item of its text, and with the training item of the next pair
    (another text)."""
    by_text: Dict[str, dict] = {}
    for item in train:
        by_text.setdefault(item['text'], item)
    same = [(v, by_text[v['text']]) for v in val if v['text'] in by_text][:max_pairs]
    if len(same) < 2:
        raise ValueError(f'{len(same)} held-out utterances share a text with a training '
                         'utterance; at least 2 are needed')
    other = [(v, same[(i + 1) % len(same)][1]) for i, (v, _) in enumerate(same)]
    other = [(v, t) for v, t in other if t['text'] != v['text']]
    return same, other


def unit_error_rate(tokenizer, pairs: Sequence[Tuple[dict, dict]], cache: dict) -> float:
    """Corpus UER of the first item's units against the second's."""
    load = LoadAudioFromFile(sample_rate=tokenizer.sample_rate)

    def units(item: dict) -> str:
        if item['audio'] not in cache:
            wave = load(dict(audio_path=item['audio']))['audio']
            cache[item['audio']] = ' '.join(f'u{u}' for u in tokenizer.quantize(wave).tolist())
        return cache[item['audio']]

    return error_rates([units(a) for a, _ in pairs], [units(b) for _, b in pairs])['WER']


def main(argv=None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='configs whose model.unit_tokenizer to test')
    parser.add_argument('--train', default='data/synth_speech/train.jsonl')
    parser.add_argument('--val', default='data/synth_speech/val.jsonl')
    parser.add_argument('--max-pairs', type=int, default=200)
    args = parser.parse_args(argv)
    register_all_modules()
    same, other = text_pairs(read_manifest(args.train), read_manifest(args.val), args.max_pairs)
    reports = []
    for path in args.configs:
        tokenizer_cfg = Config.fromfile(path).model.get('unit_tokenizer')
        if not tokenizer_cfg:
            raise KeyError(f'{path}: model.unit_tokenizer is not set')
        tokenizer = TOKENIZERS.build(tokenizer_cfg)
        cache: dict = {}
        report = dict(config=path, tokenizer=tokenizer_cfg['type'], pairs=len(same),
                      uer_same_text=round(unit_error_rate(tokenizer, same, cache), 1),
                      uer_other_text=round(unit_error_rate(tokenizer, other, cache), 1))
        print(json.dumps(report), flush=True)
        reports.append(report)
    return reports


if __name__ == '__main__':
    main()
