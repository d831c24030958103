"""Greedy decoding speed of a Zipper model: the cached decoder against the
loop it replaced, in the same run, with the outputs compared token by token.

The baseline (:func:`uncached_generate`, kept here as it stood in the model
before the key/value cache) re-runs the output tower over the whole sequence
for every new token: decoding ``n`` tokens costs ``O(n^2)`` token positions.
``Zipper.generate`` feeds one token per step through each layer's cache and
runs the context tower once.

Both decode ``--tokens`` tokens without stopping at ``</s>``, so the lengths
are what was asked, for ``--batch-size`` utterances at once (by default as
many as ``tools/test.py`` decodes together: the config's test batch size). Speed does not depend on the weights: the model is the
config's at random initialisation, with a speech-unit tokenizer fitted here
on noise unless ``--units`` names a fitted one. Prints JSON (also written to
``--out-dir``/zipper_decoding_benchmark.json)::

    python tools/analysis_tools/benchmark_zipper_decoding.py
    python tools/analysis_tools/benchmark_zipper_decoding.py --batch-size 1 --threads 2
"""
import argparse
import json
import os
import os.path as osp
import statistics
import tempfile
import time
from typing import Dict

import torch
from mmengine.config import Config

from mmfusion.models.common.sequence import BOS, EOS, PAD
from mmfusion.registry import MODELS
from mmfusion.utils import register_all_modules

DEFAULT_CONFIG = 'configs/zipper/zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='a Zipper config')
    parser.add_argument('--tokens', type=int, default=200, help='tokens to decode')
    parser.add_argument('--batch-size', type=int,
                        help="utterances decoded together (default: the config's "
                        'test_dataloader batch size, as tools/test.py decodes)')
    parser.add_argument('--seconds', type=float, default=2.0,
                        help='length of the synthetic utterances (the context)')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs of each; median')
    parser.add_argument('--units', help='a fitted SpeechUnitTokenizer checkpoint')
    parser.add_argument('--threads', type=int, default=1, help='CPU threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out-dir', default='work_dirs/benchmarks')
    return parser.parse_args(argv)


@torch.no_grad()
def uncached_generate(model, inputs: Dict, max_new_tokens: int,
                      stop_at_eos: bool = True) -> torch.Tensor:
    """The decoding loop Zipper had before its cache: every step runs the
    output tower over all tokens so far (the context tower once)."""
    tokens, masks = model._context(inputs)
    context_out = model.decoder(tokens, masks) if tokens else {}
    batch = len(inputs[next(k for k in ('text', 'units', 'audio') if k in inputs)])
    device = model.decoder.towers[model.output].embedding.weight.device
    seq = torch.full((batch, 1), BOS, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        outs = model.decoder({**tokens, model.output: seq}, masks, context_outputs=context_out)
        nxt = outs[model.output]['logits'][:, -1].argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        if stop_at_eos:
            done |= nxt == EOS
        if done.all():
            break
    return seq


def build_model(args):
    cfg = Config.fromfile(args.config)
    if args.batch_size is None:
        args.batch_size = (cfg.get('test_dataloader') or {}).get('batch_size', 1)
    model_cfg = cfg.model
    if model_cfg.get('type') != 'Zipper':
        raise ValueError(f'{args.config} builds a {model_cfg.get("type")}, not a Zipper')
    model_cfg.decoder.towers[model_cfg.output].max_len = max(
        args.tokens + 1, model_cfg.decoder.towers[model_cfg.output].get('max_len', 0))
    for tower in model_cfg.decoder.towers.values():
        if tower is not None:
            tower.pop('init_cfg', None)  # weights trained elsewhere: random init
    if model_cfg.get('unit_tokenizer') is not None:
        model_cfg.unit_tokenizer.checkpoint = args.units or fit_noise_units(
            model_cfg.unit_tokenizer.get('num_units', 64))
    torch.manual_seed(args.seed)
    return MODELS.build(model_cfg).eval()


def fit_noise_units(num_units: int) -> str:
    """A unit tokenizer fitted on noise (speed does not depend on the centroids)."""
    from mmfusion.models.tokenizers import SpeechUnitTokenizer
    tokenizer = SpeechUnitTokenizer(num_units=num_units)
    tokenizer.fit([torch.randn(16000) * torch.linspace(0, 1, 16000) for _ in range(4)])
    path = osp.join(tempfile.mkdtemp(prefix='zipper_bench_'), 'units.pth')
    tokenizer.save(path)
    return path


def make_inputs(model, args) -> Dict:
    samples = int(16000 * args.seconds)
    gen = torch.Generator().manual_seed(args.seed)
    inputs = dict(text=['the benchmark reads no transcript'] * args.batch_size)
    if 'speech' in (model.output, model.context):
        inputs.update(audio=torch.randn(args.batch_size, samples, generator=gen) * 0.1,
                      audio_lengths=torch.full((args.batch_size,), samples))
    return inputs


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv=None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    torch.set_num_threads(args.threads)
    model = build_model(args)
    inputs = make_inputs(model, args)
    # Speech units are computed once, outside the timing.
    if 'audio' in inputs:
        inputs = dict(text=inputs['text'], units=model.unit_tokenizer.quantize_batch(
            inputs['audio'], inputs['audio_lengths']))
    uncached_s, reference = timed(
        lambda: uncached_generate(model, inputs, args.tokens, stop_at_eos=False), args.repeats)
    cached_s, ids = timed(
        lambda: model.generate(inputs, max_new_tokens=args.tokens, stop_at_eos=False),
        args.repeats)
    result = dict(config=args.config, tokens=args.tokens, batch_size=args.batch_size,
                  threads=args.threads, repeats=args.repeats,
                  uncached_s=round(uncached_s, 4), cached_s=round(cached_s, 4),
                  speedup=round(uncached_s / cached_s, 2),
                  identical=bool(torch.equal(ids, reference)),
                  shape=list(ids.shape))
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'zipper_decoding_benchmark.json'), 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
