"""benchmark_all: the SSD section end to end at a small shape (its table
row, JSON and chart), and the table's rows from each section's numbers."""
import json
import os.path as osp
import sys

from tests.conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
import benchmark_all  # noqa: E402


def test_ssd_section_writes_table_json_and_chart(tmp_path):
    out = benchmark_all.main(['--only', 'ssd', '--ssd-shape', '300', '2', '8', '8',
                              '--ssd-repeats', '1', '--out-dir', str(tmp_path)])
    ssd = out['results']['ssd']
    assert ssd['shape'] == dict(L=300, H=2, P=8, N=8)
    assert ssd['chunk_size'] in (32, 64, 128, 256, 512)
    # Equality with the float64 recurrence is part of the measurement.
    assert ssd['max_rel_err_y'] <= 1e-5 and ssd['max_rel_err_state'] <= 1e-5
    assert set(ssd['transformers_seconds']) == {32, 64, 128, 256}  # its fastest is the baseline
    # The ratios are what their parts say (no timing is asserted).
    assert ssd['speedup_vs_transformers'] == min(ssd['transformers_seconds'].values()) \
        / ssd['seconds']
    assert ssd['fraction_of_peak'] == ssd['useful_gflops'] / ssd['matmul_peak_gflops']
    saved = json.load(open(tmp_path / 'benchmark_all.json'))
    assert [row['what'] for row in saved['table']] == [row['what'] for row in out['table']]
    assert len(out['table']) == 1 and 'SSD scan (L=300 H=2 P=8 N=8' in out['table'][0]['what']
    assert (tmp_path / 'benchmark_all.png').stat().st_size > 0


def test_table_has_a_row_per_measured_ratio():
    results = dict(
        decode=dict(context=16, speedup_eager=2.0, speedup_compiled=4.0, runs=dict(
            teacher=dict(decode_ms_per_token=2.0, decode_ms_per_token_compiled=4.0),
            linear=dict(decode_ms_per_token=1.0, decode_ms_per_token_compiled=1.0))),
        runner=dict(runner_over_bare=0.98, runner_best=9.8, bare_best=10.0),
        compile={'a.py': dict(speedup=1.5, compiled_s_per_iter=0.1, eager_s_per_iter=0.15,
                              compile_s=30.0), 'b.py': dict(error='failed')},
        cache=dict(last_epoch_speedup=3.0, losses_identical=True))
    rows = benchmark_all.table(results)
    assert [r['ratio'] for r in rows] == [2.0, 4.0, 0.98, 1.5, 3.0]
    assert 'a.py' in rows[3]['what']
    assert benchmark_all.format_table(rows).count('\n') == len(rows) + 1


def test_a_failed_section_keeps_the_others_and_is_reported(tmp_path, monkeypatch):
    def broken(args):
        raise FileNotFoundError('data/x/annotations/panoptic_train.json')

    monkeypatch.setattr(benchmark_all, 'bench_decode', broken)
    out = benchmark_all.main(['--only', 'decode', 'ssd', '--ssd-shape', '64', '1', '4', '4',
                              '--ssd-repeats', '1', '--out-dir', str(tmp_path)])
    saved = json.load(open(tmp_path / 'benchmark_all.json'))
    assert saved['results']['decode'] == {
        'error': 'FileNotFoundError: data/x/annotations/panoptic_train.json'}
    assert [row['what'][:8] for row in saved['table']] == ['SSD scan']
    assert benchmark_all.failures(out['results']) == {
        'decode': 'FileNotFoundError: data/x/annotations/panoptic_train.json'}
    compile_failed = {'compile': {'a.py': dict(speedup=1.2), 'b.py': dict(error='E: b')}}
    assert benchmark_all.failures(compile_failed) == {'compile: b.py': 'E: b'}


def test_compile_section_keeps_each_tiny_recipes_overrides(monkeypatch):
    seen = []
    monkeypatch.setattr(benchmark_all.benchmark_compile, 'run',
                        lambda configs, iters: seen.extend(configs) or {})
    args = benchmark_all.parse_args([])
    benchmark_all.bench_compile(args)
    assert dict(seen) == benchmark_all.benchmark_compile.TINY_RECIPES
    assert any(overrides for _, overrides in seen)  # the X-Decoder recipe's data root
