"""The Zipper decoding benchmark runs end to end and its baseline loop
(Zipper's decoding before the cache) gives the cached decoder's tokens; no
timing is asserted."""
import importlib.util
import json
import os.path as osp

import pytest
import torch

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location(
    'benchmark_zipper_decoding',
    osp.join(REPO, 'tools/analysis_tools/benchmark_zipper_decoding.py'))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.usefixtures('one_thread')


def test_benchmark_writes_json_and_outputs_are_identical(tmp_path, monkeypatch, fitted_units):
    monkeypatch.chdir(REPO)
    result = bench.main(['--tokens', '24', '--batch-size', '2', '--seconds', '0.5',
                         '--repeats', '1', '--units', fitted_units, '--out-dir', str(tmp_path)])
    with open(tmp_path / 'zipper_decoding_benchmark.json') as f:
        assert json.load(f) == result
    assert result['identical'] and result['shape'] == [2, 25]
    assert result['speedup'] == pytest.approx(result['uncached_s'] / result['cached_s'], rel=0.02)


def test_baseline_loop_stops_at_eos_as_the_model_does(fitted_units):
    args = bench.parse_args(['--tokens', '30', '--units', fitted_units, '--seconds', '0.5'])
    model = bench.build_model(args)
    # At the default init a tied tower repeats its input token; larger
    # weights and open gates make rows emit varied tokens from their audio.
    torch.manual_seed(0)
    for module in model.decoder.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.3)
    for block in model.decoder.cross_attn.values():
        block.gate.data.fill_(1.0)
    inputs = bench.make_inputs(model, bench.parse_args(['--batch-size', '4', '--seconds', '0.5']))
    inputs['audio'] *= torch.tensor([1.0, 3.0, 10.0, 30.0])[:, None]
    free = bench.uncached_generate(model, inputs, 30, stop_at_eos=False)[:, 1:]
    # A token first emitted at different steps in different rows becomes </s>:
    # swapping its embedding row with </s>'s (tied output layer) relabels it.
    firsts = {t: {int((row == t).nonzero()[0]) for row in free if (row == t).any()}
              for t in range(bench.EOS + 2, model.decoder.towers.text.vocab_size)}
    token = max(firsts, key=lambda t: len(firsts[t]))
    assert len(firsts[token]) >= 2
    weight = model.decoder.towers.text.embedding.weight
    with torch.no_grad():
        weight[[token, bench.EOS]] = weight[[bench.EOS, token]]
    expected = bench.uncached_generate(model, inputs, 30)
    ends = {int((row == bench.EOS).nonzero()[0]) for row in expected if (row == bench.EOS).any()}
    assert len(ends) >= 2  # rows stopped at different steps
    assert torch.equal(model.generate(inputs, max_new_tokens=30), expected)
