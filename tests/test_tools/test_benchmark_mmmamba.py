"""The mmMamba speed benchmark runs end to end on short sequences (no timing
is asserted) and fits prefill exponents correctly."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location(
    'benchmark_mmmamba', osp.join(REPO, 'tools/analysis_tools/benchmark_mmmamba.py'))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_fit_exponent_recovers_power_laws():
    lengths = np.array([1024, 2048, 4096, 8192, 16384])
    assert abs(bench.fit_exponent(lengths, 3e-6 * lengths ** 1.7) - 1.7) < 1e-9
    assert abs(bench.fit_exponent(lengths, 2e-5 * lengths) - 1.0) < 1e-9


def test_benchmark_writes_json_and_plot(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    result = bench.main(['--lengths', '64', '128', '--decode-context', '128', '--decode-tokens',
                         '2', '--repeats', '1', '--in-process', '--out-dir', str(tmp_path)])
    with open(tmp_path / 'mmmamba_benchmark.json') as f:
        saved = json.load(f)
    for kind in bench.KINDS:  # the exponents fit the saved times
        rows = [r for r in saved['runs'] if r['model'] == kind]
        slope = np.log(rows[1]['prefill_s'] / rows[0]['prefill_s']) / np.log(2)
        assert abs(saved['prefill_exponent'][kind] - slope) < 1e-6
    assert result['vs_teacher']['linear']['state_memory_reduction'] == pytest.approx(
        1 - saved['decode']['linear']['decode_state_mb'] / saved['decode']['teacher']
        ['decode_state_mb'])
    assert {(r['model'], r['length']) for r in saved['runs']} == {
        (k, n) for k in bench.KINDS for n in (64, 128)}
    assert set(saved['decode']) == set(bench.KINDS)
    # Decoding state after 128 + 2 x 2 tokens (2 steps at each of 1 and 2
    # threads): the teacher's key/value cache over 6
    # layers x 2 kv heads x 32 dims (k and v, fp32); Mamba-2 layers hold a
    # (4 heads x 32 x 32) SSM state and one step of conv input per channel.
    kv = 6 * 2 * (128 + 4) * 2 * 32 * 4
    ssm = (4 * 32 * 32 + (128 + 2 * 64)) * 4
    assert saved['decode']['teacher']['decode_state_mb'] * 2**20 == kv
    assert saved['decode']['linear']['decode_state_mb'] * 2**20 == 6 * ssm
    assert saved['decode']['hybrid']['decode_state_mb'] * 2**20 == 4 * ssm + kv // 3
    for kind, numbers in saved['decode'].items():  # reported at the faster thread count
        assert set(numbers['decode_ms_per_token_by_threads']) == {'1', '2'}
        assert numbers['decode_ms_per_token'] == min(
            numbers['decode_ms_per_token_by_threads'].values())
    assert osp.getsize(tmp_path / 'mmmamba_benchmark.png') > 10_000
