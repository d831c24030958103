"""One-command GPU check: the tiny config of every landed family trains a few
iterations with mixed precision; prints iterations/s and peak memory as JSON.

For each family the script takes the real tiny config, points it at a small
freshly generated copy of its embedded dataset (so nothing needs to exist
beforehand), drops pretrained checkpoints (random weights: this checks that
training runs, not what it learns), switches validation and checkpoints off,
and trains ``--iters`` iterations under mixed precision exactly as
``tools/train.py --amp`` sets it up (``AmpOptimWrapper``, float16 with
dynamic loss scaling unless ``--dtype bfloat16``). One JSON line per family,
then a summary line with the device name.

Usage on a GPU machine::

    python tools/analysis_tools/gpu_check.py            # every family
    python tools/analysis_tools/gpu_check.py --families gms xdecoder --iters 50

``--device cpu`` runs the same path with CPU bf16 autocast (CPUAmpOptimWrapper),
which is how the script itself is tested on machines without a GPU.
"""
import argparse
import copy
import json
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmfusion.engine.hooks import ThroughputHook
from mmfusion.engine.optim import enable_amp
from mmfusion.utils import register_all_modules
from mmfusion.utils.benchmark import training_only

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# family -> (tiny config, config overrides dropping pretrained weights, dataset).
FAMILIES: Dict[str, tuple] = {
    'vae': ('configs/gms/vae_kl-f4-tiny_1xb8-600it_synth-lesion.py', {}, 'synth_lesion'),
    'gms': ('configs/gms/gms_kl-f4-tiny_1xb8-800it_synth-lesion.py',
            {'model.vae.pretrained': None, 'model.vae.prefix': None}, 'synth_lesion'),
    'clip': ('configs/clip/clip_vit-tiny_1xb128-1k_synthshapes.py', {}, 'synthshapes'),
    'xdecoder': ('configs/xdecoder/xdecoder_r18-tiny_2xb8-2300it_synthshapes.py',
                 {'model.text_encoder.checkpoint': None}, 'synthshapes'),
}
GENERATORS = {
    'synth_lesion': ['tools/dataset_converters/generate_synth_lesion.py',
                     '--num-train', '64', '--num-val', '8', '--num-test', '8'],
    'synthshapes': ['tools/dataset_converters/generate_synthshapes.py',
                    '--num-train', '128', '--num-val', '16', '--num-val-novel', '16'],
}


def generate(dataset: str, data_dir: str) -> str:
    out = osp.join(data_dir, dataset)
    if not osp.isdir(out):
        print(f'generating {dataset} into {out}', flush=True)
        script, *args = GENERATORS[dataset]
        subprocess.run([sys.executable, osp.join(REPO, script), '--out', out, *args],
                       check=True, cwd=REPO)
    return out


def _set_data_root(dataset_cfg: dict, root: str) -> None:
    for ds in dataset_cfg.get('datasets', [dataset_cfg]):
        if 'dataset' in ds:  # wrappers such as RepeatDataset
            _set_data_root(ds.dataset, root)
        else:
            ds.data_root = root


def check_cfg(family: str, data_root: str, iters: int, warmup: int, device: str,
              dtype: str, work_dir: str) -> Config:
    config, overrides, _ = FAMILIES[family]
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict(overrides)
    cfg.load_from, cfg.resume = None, False
    cfg.work_dir = osp.join(work_dir, family)
    _set_data_root(cfg.train_dataloader.dataset, data_root)
    cfg.train_dataloader.num_workers = 2 if device == 'cuda' else 0
    cfg.train_dataloader.persistent_workers = False
    if cfg.train_dataloader.sampler.get('type') == 'DefaultSampler':
        cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    training_only(cfg, warmup + iters, log_interval=max(1, iters // 2))
    cfg.param_scheduler = []
    cfg.custom_hooks = []
    enable_amp(cfg.optim_wrapper, dtype)
    return cfg


def run_family(cfg: Config, warmup: int) -> dict:
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    timer = ThroughputHook(warmup)
    runner.register_hook(timer)
    start = time.perf_counter()
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    return dict(iters_per_s=round(timer.iters_per_s, 3),
                images_per_s=round(timer.iters_per_s * cfg.train_dataloader.batch_size, 1),
                peak_memory_mib=None if timer.peak_memory_mib is None
                else round(timer.peak_memory_mib, 1),
                batch_size=cfg.train_dataloader.batch_size,
                last_loss=round(float(loss), 4), finite=bool(torch.isfinite(torch.tensor(loss))),
                wall_s=round(time.perf_counter() - start, 1))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--families', nargs='+', choices=sorted(FAMILIES), default=list(FAMILIES))
    parser.add_argument('--iters', type=int, default=30, help='timed iterations per family')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--dtype', choices=['float16', 'bfloat16'],
                        help='autocast dtype; default as train.py --amp: float16 with dynamic '
                        'loss scaling on CUDA, bfloat16 on CPU')
    parser.add_argument('--device', choices=['cuda', 'cpu'],
                        default='cuda' if torch.cuda.is_available() else None)
    parser.add_argument('--data-dir', default='work_dirs/gpu_check/data')
    parser.add_argument('--work-dir', default='work_dirs/gpu_check')
    args = parser.parse_args(argv)
    if args.device is None:
        parser.error('no GPU found; pass --device cpu to run the check on the CPU')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but torch sees no GPU')
    if args.device == 'cpu' and torch.cuda.is_available():
        parser.error('--device cpu is for machines without a GPU (mmengine would still use it)')
    return args


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    register_all_modules()
    results = []
    for family in args.families:
        data_root = generate(FAMILIES[family][2], args.data_dir)
        cfg = check_cfg(family, data_root, args.iters, args.warmup, args.device, args.dtype,
                        args.work_dir)
        result = dict(family=family, config=FAMILIES[family][0], **run_family(cfg, args.warmup))
        print(json.dumps(result), flush=True)
        results.append(result)
    summary = dict(
        device=torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu',
        torch=torch.__version__,
        amp_dtype=args.dtype or ('float16' if args.device == 'cuda' else 'bfloat16'),
        iters=args.iters, families=[r['family'] for r in results],
        all_finite=all(r['finite'] for r in results))
    print(json.dumps(summary), flush=True)
    return results


if __name__ == '__main__':
    main()
