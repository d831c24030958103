"""``--compile`` (torch.compile) in tools/train.py, tools/test.py and the Inferencers.

The first tests (default suite, seconds) check the plumbing without compiling
anything real. The ``compile``-marked ones are opt-in (``pytest
--run-compile -m compile``; minutes per family on CPU, where inductor builds
C++): each family's tiny recipe, on a small generated copy of its dataset and
random weights, trains 20 iterations with ``tools/train.py --compile`` and is
evaluated with ``tools/test.py --compile``; the compiled losses and metrics
are finite, and the first iteration's loss agrees with an eager run's.
"""
import glob
import json
import math
import os.path as osp
import shutil
import subprocess
import sys
from typing import Dict, NamedTuple, Optional

import pytest
import torch
from mmengine.config import Config

from tests.conftest import REPO, build_train_cfg, tiny_gms_cfg

ITERS = 20
EVAL_SAMPLES = 8


# -- default suite: plumbing ---------------------------------------------------
def test_compile_flags_set_mmengine_compile_and_the_hook():
    gms = f'{REPO}/configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py'
    assert build_train_cfg([gms]).get('compile') is None
    cfg = build_train_cfg([gms, '--compile'])
    assert cfg.compile is True
    assert [h['type'] for h in cfg.custom_hooks].count('CompileHook') == 1
    cfg = build_train_cfg([gms, '--compile-backend', 'eager', '--compile-mode', 'default'])
    assert cfg.compile == dict(backend='eager', mode='default')
    with pytest.raises(SystemExit):
        build_train_cfg([gms, '--compile-mode', 'fastest'])


def test_test_tool_takes_the_compile_flags():
    proc = subprocess.run([sys.executable, 'tools/test.py', '--help'], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for flag in ('--compile', '--compile-backend', '--compile-mode'):
        assert flag in proc.stdout


def test_compile_hook_compiles_eval_steps_and_reports_times(tmp_path, one_thread):
    """Backend 'eager' (dynamo traces, nothing is generated): train_step
    compiled by mmengine, val_step by the hook, the times in the log dir."""
    from mmengine.runner import Runner

    from mmfusion.utils.compile import enable_compile, is_compiled
    cfg = tiny_gms_cfg(str(tmp_path / 'work'), max_iters=2)
    enable_compile(cfg, backend='eager')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert is_compiled(runner.model.train_step) and is_compiled(runner.model.val_step)
    assert not is_compiled(runner.model.test_step)
    with open(osp.join(runner.log_dir, 'compile_times.json')) as f:
        times = json.load(f)
    assert times['train']['iterations'] == 2 and times['train']['compiled']
    assert times['train']['first_iter_s'] > 0 and 'steady_s_per_iter' in times['train']
    assert times['val']['iterations'] >= 1
    info = runner.message_hub.get_info('compile/train')
    assert info['first_iter_s'] == times['train']['first_iter_s']


def test_compile_exclusions_and_inference_compile():
    from torch import nn

    from mmfusion.utils.compile import apply_compile_exclusions, compile_inference, is_compiled

    class Part(nn.Module):
        compile_exclude = ('host_side',)
        compile_exclude_without_grad = ('scan',)

        def host_side(self, x):
            return x

        def scan(self, x):
            return x * 2

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.part = Part()

        def test_step(self, data):
            return data

    model = Model()
    assert apply_compile_exclusions(model) == ['part.host_side', 'part.scan']
    assert apply_compile_exclusions(model) == []  # once
    traced = torch.compile(lambda x: model.part.scan(x) + 1, backend='eager')
    assert traced(torch.ones(2)).tolist() == [3, 3]
    with torch.no_grad():
        assert traced(torch.ones(2)).tolist() == [3, 3]
    assert compile_inference(model, False) is model and not is_compiled(model.test_step)
    compile_inference(model, dict(backend='eager'))
    assert is_compiled(model.test_step) and not hasattr(model, 'predict')
    assert model.test_step(3) == 3


def test_texts_reach_a_compiled_model_as_an_opaque_sequence():
    """Under prepare_for_compile the data preprocessor wraps lists of strings
    in a HostSequence, which dynamo does not guard: new texts every call, no
    recompile."""
    from torch._dynamo.utils import counters

    from mmfusion.models.data_preprocessors import MultiModalDataPreprocessor
    from mmfusion.utils.compile import HostSequence, prepare_for_compile
    pre = MultiModalDataPreprocessor()
    data = dict(inputs=dict(text=['a red circle', 'a blue square']), data_samples=None)
    assert pre(data)['inputs']['text'] == ['a red circle', 'a blue square']
    model = torch.nn.Sequential()
    model.data_preprocessor = pre
    prepare_for_compile(model)
    texts = pre(data)['inputs']['text']
    assert isinstance(texts, HostSequence) and list(texts) == ['a red circle', 'a blue square']
    assert texts == ['a red circle', 'a blue square'] and len(texts) == 2

    @torch.compiler.disable
    def lengths(texts):
        return torch.tensor([len(t) for t in texts])

    def step(inputs):
        return inputs['x'] * 2 + lengths(inputs['text']).sum()

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(step, backend='eager')
    for i in range(4):
        text = pre(dict(inputs=dict(text=[f'text {i}', 'b'])))['inputs']['text']
        assert compiled(dict(x=torch.ones(2), text=text)).tolist() == [2 + 5 + len(str(i)) + 1] * 2
    assert counters['frames']['total'] <= 2  # the first call and its resume, never again


def test_inferencer_compile_argument(tmp_path):
    from mmfusion.apis.vision_inferencers import MedicalSegInferencer
    from mmfusion.utils.compile import is_compiled
    cfg = tiny_gms_cfg(str(tmp_path / 'work'))
    inferencer = MedicalSegInferencer(cfg, weights=False, compile=dict(backend='eager'),
                                      show_progress=False)
    assert is_compiled(inferencer.model.test_step)
    plain = MedicalSegInferencer(cfg, weights=False, show_progress=False)
    assert not is_compiled(plain.model.test_step)


# -- opt-in: every family's tiny recipe, trained and evaluated compiled ---------
class Recipe(NamedTuple):
    config: str
    dataset: str
    evaluate: bool = True


RECIPES: Dict[str, Recipe] = {
    'gms': Recipe('configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py', 'synth_lesion'),
    'clip': Recipe('configs/clip/clip_vit-tiny_1xb128-1k_synthshapes.py', 'synthshapes'),
    'xdecoder': Recipe('configs/xdecoder/xdecoder_r18-tiny_2xb8-2300it_synthshapes.py',
                       'synthshapes'),
    'zipper': Recipe(
        'configs/zipper/zipper_asr-rope-noise_frozen-text-tiny_1xb16-1500it_synth-speech.py',
        'synth_speech'),
    'mmmamba': Recipe(
        'configs/mmmamba/mmmamba-hybrid_stage3_tiny_1xb32-600it_synthshapes-caption.py',
        'synthshapes'),
    'frozenseg': Recipe('configs/frozenseg/frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes.py',
                        'synthshapes'),
    'semat': Recipe('configs/semat/semat_sam-tiny_1xb8-1200it_synthmatte.py', 'synthmatte'),
    'sam': Recipe('configs/sam/sam_vit-tiny_1xb8-2600it_synthshapes.py', 'synthshapes'),
    # pre-training has no evaluation; the fine-tuned classifier on its encoder has
    'i2pmae': Recipe('configs/i2pmae/i2pmae_tiny_1xb32-300it_synthshapes3d.py', 'synthshapes3d',
                     evaluate=False),
    'i2pmae-finetune': Recipe('configs/i2pmae/finetune_i2pmae-tiny_1xb32-300it_synthshapes3d.py',
                              'synthshapes3d'),
}

# dataset -> generator and its small-size arguments
GENERATORS = {
    'synth_lesion': ['generate_synth_lesion.py', '--num-train', '16', '--num-val', '8',
                     '--num-test', '8', '--size', '64'],
    'synthshapes': ['generate_synthshapes.py', '--num-train', '48', '--num-val', '8',
                    '--num-val-novel', '8'],
    'synthshapes3d': ['generate_synthshapes3d.py', '--num-train', '48', '--num-val', '18',
                      '--num-test', '18'],
    'synthmatte': ['generate_synthmatte.py', '--num-train', '16', '--num-val', '8',
                   '--num-test', '8'],
    'synth_speech': ['generate_synth_speech.py', '--num-train', '48', '--num-val', '8',
                     '--num-text', '200'],
}


def generate(dataset: str, data_dir: str) -> str:
    """The small copy of ``dataset`` under ``data_dir`` (generated once)."""
    out = osp.join(data_dir, dataset)
    if not osp.isfile(osp.join(out, 'meta.json')):
        if dataset == 'synth_speech' and shutil.which('espeak-ng') is None:
            pytest.skip('espeak-ng is not installed (SynthSpeech is synthesised with it)')
        script, *args = GENERATORS[dataset]
        subprocess.run([sys.executable, f'tools/dataset_converters/{script}', '--out', out,
                        *args], cwd=REPO, check=True, capture_output=True, timeout=900)
    return out


def _datasets(ds: dict):
    """The leaf dataset configs of a (wrapped, concatenated) dataset config."""
    if 'datasets' in ds:
        for sub in ds['datasets']:
            yield from _datasets(sub)
    elif 'dataset' in ds:
        yield from _datasets(ds['dataset'])
    else:
        yield ds


def tiny_cfg(recipe: Recipe, data_root: str, work_dir: str, iters: int = ITERS,
             fitted_units: Optional[str] = None) -> Config:
    """``recipe`` shortened to ``iters`` iterations on ``data_root`` (random
    weights, a checkpoint at the end, no validation while training, every
    iteration's losses logged to ``vis_data/scalars.json``, at most
    ``EVAL_SAMPLES`` test samples)."""
    from mmfusion.utils.config_weights import drop_weight_files
    cfg = Config.fromfile(osp.join(REPO, recipe.config))
    drop_weight_files(cfg.model)  # this checks compiling, not learning
    unit_tokenizer = cfg.model.get('unit_tokenizer')
    if unit_tokenizer is not None and 'checkpoint' in unit_tokenizer:
        unit_tokenizer.checkpoint = fitted_units
    cfg.load_from, cfg.resume = None, False
    cfg.work_dir = work_dir
    # tools/test.py evaluates; validation at the end of training would compile val_step too
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    for key in ('train_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        loader.update(num_workers=0, persistent_workers=False)
        for ds in _datasets(loader.dataset):
            ds['data_root'] = data_root
            if key != 'train_dataloader':
                ds['indices'] = EVAL_SAMPLES
        if key != 'train_dataloader':
            loader.batch_size = min(loader.batch_size, 4)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters)
    scheds = cfg.get('param_scheduler') or []
    cfg.param_scheduler = [s for s in ([scheds] if isinstance(scheds, dict) else scheds)
                           if not s.get('by_epoch', True) or s.get('convert_to_iter_based')]
    cfg.default_hooks.checkpoint.update(by_epoch=False, interval=iters, max_keep_ckpts=1)
    cfg.default_hooks.logger.update(interval=1)
    cfg.log_processor = dict(cfg.get('log_processor') or {}, by_epoch=False)
    for hook in cfg.get('custom_hooks') or []:
        if 'cache_dir' in hook:
            hook['cache_dir'] = osp.join(work_dir, 'feature_cache')
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    return cfg


def _run(args, timeout: int = 3000) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f'{" ".join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}'
    return proc


def _losses(work_dir: str) -> list:
    """Per-iteration ``loss`` of a training run (its scalars.json)."""
    [path] = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [row['loss'] for row in rows if 'loss' in row]


def _metrics(stdout: str) -> dict:
    line = [x for x in stdout.splitlines() if x.startswith('{')][-1]
    return {k: v for k, v in json.loads(line).items() if isinstance(v, (int, float))}


@pytest.fixture(scope='module')
def compile_data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp('compile_data'))


@pytest.mark.compile
@pytest.mark.timeout(3600)
@pytest.mark.parametrize('family', sorted(RECIPES))
def test_family_trains_and_evaluates_compiled(family, compile_data_dir, fitted_units, tmp_path):
    recipe = RECIPES[family]
    data_root = generate(recipe.dataset, compile_data_dir)
    cfg_file = str(tmp_path / f'{family}.py')
    tiny_cfg(recipe, data_root, str(tmp_path / 'compiled'), fitted_units=fitted_units).dump(
        cfg_file)
    # eager: the first iteration's loss, for comparison
    _run(['tools/train.py', cfg_file, '--work-dir', str(tmp_path / 'eager'),
          '--cfg-options', 'train_cfg.max_iters=1', 'default_hooks.checkpoint.interval=2'])
    eager_loss = _losses(str(tmp_path / 'eager'))[0]

    _run(['tools/train.py', cfg_file, '--compile'])
    losses = _losses(str(tmp_path / 'compiled'))
    assert len(losses) == ITERS and all(math.isfinite(x) for x in losses), losses
    assert math.isclose(losses[0], eager_loss, rel_tol=0.05, abs_tol=1e-3), (losses[0], eager_loss)
    [times] = glob.glob(str(tmp_path / 'compiled' / '*' / 'compile_times.json'))
    with open(times) as f:
        assert json.load(f)['train']['iterations'] == ITERS
    if not recipe.evaluate:
        return

    ckpt = str(tmp_path / 'compiled' / f'iter_{ITERS}.pth')
    eager = _metrics(_run(['tools/test.py', cfg_file, ckpt, '--no-progress',
                           '--work-dir', str(tmp_path / 'test_eager')]).stdout)
    compiled = _metrics(_run(['tools/test.py', cfg_file, ckpt, '--compile', '--no-progress',
                              '--work-dir', str(tmp_path / 'test_compiled')]).stdout)
    assert compiled and set(compiled) == set(eager)
    for key, value in compiled.items():
        if math.isfinite(eager[key]):  # a metric of a class absent from 8 samples may be NaN
            assert math.isfinite(value), (key, value, eager[key])
    [times] = glob.glob(str(tmp_path / 'test_compiled' / '*' / 'compile_times.json'))
    with open(times) as f:
        assert json.load(f)['test']['compiled']
    print(json.dumps(dict(family=family, first_loss=dict(eager=eager_loss, compiled=losses[0]),
                          metrics=dict(eager=eager, compiled=compiled))))


@pytest.mark.compile
@pytest.mark.timeout(1800)
def test_benchmark_compile_run_returns_the_promised_keys(tmp_path):
    sys.path.insert(0, f'{REPO}/tools/analysis_tools')
    try:
        import benchmark_compile
    finally:
        sys.path.pop(0)
    cfg = tiny_gms_cfg(str(tmp_path / 'work'))
    result = benchmark_compile.run([cfg], iters=3, warmup=2)
    [entry] = result.values()
    assert {'eager_s_per_iter', 'compiled_s_per_iter', 'speedup', 'compile_s'} <= set(entry)
    assert entry['eager_s_per_iter'] > 0 and entry['compiled_s_per_iter'] > 0
    assert entry['losses_finite'] and entry['first_loss']['rel_diff'] < 0.05


def test_benchmark_compile_records_a_failed_recipe_and_runs_the_next(tmp_path, monkeypatch):
    """Not opt-in: nothing compiles, the first recipe's data is missing."""
    sys.path.insert(0, f'{REPO}/tools/analysis_tools')
    try:
        import benchmark_compile
    finally:
        sys.path.pop(0)
    done = []
    monkeypatch.setattr(benchmark_compile, 'benchmark_one',
                        lambda cfg, *args: done.append(cfg.filename) or dict(speedup=1.0)
                        if 'clip' in cfg.filename else benchmark_compile.collect_batches(cfg, 1))
    missing = str(tmp_path / 'no-data')
    result = benchmark_compile.run([
        ('configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py',
         {'train_dataloader.dataset.data_root': missing}),
        'configs/clip/clip_vit-tiny_1xb128-1k_synthshapes.py'])
    gms, clip = result.values()
    assert missing in gms['error'] and clip == dict(speedup=1.0) and len(done) == 1
