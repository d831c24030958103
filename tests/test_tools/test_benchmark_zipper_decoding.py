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
    'benchmark_zipper_decoding', osp.join(REPO, 'tools/analysis_tools/benchmark_zipper_decoding.py'))
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
    args = bench.parse_args(['--tokens', '40', '--units', fitted_units, '--seconds', '0.5'])
    model = bench.build_model(args)
    # Make </s> likely, so that rows end at different steps.
    text = model.decoder.towers.text
    with torch.no_grad():
        text.embedding.weight[bench.EOS] *= 8
    inputs = bench.make_inputs(model, bench.parse_args(['--batch-size', '3', '--seconds', '0.5']))
    inputs['audio'][1] *= 5
    expected = bench.uncached_generate(model, inputs, 40)
    assert torch.equal(model.generate(inputs, max_new_tokens=40), expected)
