"""The framework-overhead benchmark and the GPU check run end to end (on CPU,
tiny settings) and report what they promise; no timing is asserted."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, tiny_gms_cfg


def _json_lines(stdout: str) -> list:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{')]


def test_runner_overhead_benchmark_reports_both_throughputs(tmp_path):
    cfg_file = str(tmp_path / 'gms_tiny.py')
    tiny_gms_cfg(str(tmp_path / 'work')).dump(cfg_file)
    proc = subprocess.run(
        [sys.executable, 'tools/analysis_tools/benchmark_runner_overhead.py', cfg_file,
         '--iters', '3', '--warmup', '1', '--rounds', '1', '--work-dir', str(tmp_path / 'bench')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _json_lines(proc.stdout)[-1]
    assert result['timed_iters'] == 3 and result['batch_size'] == 2
    assert len(result['bare_iters_per_s']) == len(result['runner_iters_per_s']) == 1
    assert result['bare_best'] > 0 and result['runner_best'] > 0
    assert abs(result['runner_over_bare'] - result['runner_best'] / result['bare_best']) < 0.01
    # Same seed, weights, random draws and learning rates: the same losses.
    assert result['same_losses'] is True and result['lockstep'] is False


def test_runner_overhead_run_importable_in_lockstep(tmp_path):
    """run() returns the dict main() prints; in lockstep (one iteration of
    each loop in turn, each with its own RNG state) both still compute the
    same losses, round after round."""
    path = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_runner_overhead.py')
    spec = importlib.util.spec_from_file_location('benchmark_runner_overhead', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg_file = str(tmp_path / 'gms_tiny.py')
    tiny_gms_cfg(str(tmp_path / 'work')).dump(cfg_file)
    result = module.run(cfg_file, iters=3, warmup=1, rounds=2,
                        cfg_options={'model.posterior_sample_prob': 1.0},
                        work_dir=str(tmp_path / 'bench'), lockstep=True)
    assert result['lockstep'] is True and result['same_losses'] is True
    assert len(result['bare_iters_per_s']) == len(result['runner_median_iter_s']) == 2
    assert abs(result['runner_over_bare'] - result['runner_best'] / result['bare_best']) < 0.01


def test_gpu_check_runs_a_family_on_cpu_and_reports_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, 'tools/analysis_tools/gpu_check.py', '--device', 'cpu',
         '--families', 'gms', '--iters', '2', '--warmup', '1',
         '--data-dir', str(tmp_path / 'data'), '--work-dir', str(tmp_path / 'work')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    family, summary = _json_lines(proc.stdout)[-2:]
    assert family['family'] == 'gms' and family['finite'] and family['iters_per_s'] > 0
    assert family['peak_memory_mib'] is None  # CPU: no CUDA allocator to read
    assert summary == dict(device='cpu', torch=summary['torch'], amp_dtype='bfloat16', iters=2,
                           families=['gms'], all_finite=True)


def test_gpu_check_refuses_to_guess_a_device_without_gpu():
    if torch.cuda.is_available():
        pytest.skip('a GPU is present: the check runs on it by default')
    proc = subprocess.run([sys.executable, 'tools/analysis_tools/gpu_check.py'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and 'pass --device cpu' in proc.stderr
