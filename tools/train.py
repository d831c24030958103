"""Train a model from a config: ``python tools/train.py CONFIG [options]``."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction

from mmfusion.engine.optim import enable_amp
from mmfusion.utils import explain_unknown_type, register_all_modules
from mmfusion.utils.compile import add_compile_args, apply_compile_args
from mmfusion.utils.dist import prepare_launcher, runner_class, shutdown_launcher

# --vis-backend names -> mmengine's visualisation backends
VIS_BACKENDS = dict(local='LocalVisBackend', tensorboard='TensorboardVisBackend')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an mmfusion model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 AMP on CUDA, bf16 autocast on CPU')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from a checkpoint; without a path, from the latest '
                        'checkpoint in the work dir')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by (actual batch size / auto_scale_lr.base_batch_size)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=100 '
                        'model.mapping_net.base_channels=16')
    parser.add_argument('--sync-bn', choices=['torch', 'mmcv'],
                        help='convert BatchNorm layers to synchronised BatchNorm (DDP only)')
    parser.add_argument('--vis-backend', nargs='+', choices=sorted(VIS_BACKENDS),
                        help='where scalars (losses, lr, metrics) go: local (JSON under the '
                        'log dir, always kept: analyze_logs.py reads it) and/or tensorboard '
                        '(event files under <log dir>/vis_data; tensorboard --logdir WORK_DIR)')
    add_compile_args(parser, 'train')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        enable_amp(cfg.optim_wrapper)

    if args.vis_backend:
        names = ['local'] + [n for n in args.vis_backend if n != 'local']
        cfg.visualizer.vis_backends = [dict(type=VIS_BACKENDS[n]) for n in names]

    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume

    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise KeyError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    apply_compile_args(cfg, args)
    prepare_launcher(cfg, args.launcher, sync_bn=args.sync_bn)
    return cfg


def main() -> None:
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = build_cfg(args)
    # Datasets, transforms and hooks are built lazily inside train().
    # Configs with a `strategy` (FSDP, DeepSpeed) run under FlexibleRunner.
    with explain_unknown_type():
        runner = runner_class(cfg).from_cfg(cfg)
        runner.logger.info(f'work dir: {osp.abspath(runner.work_dir)} (checkpoints), '
                           f'logs: {osp.abspath(runner.log_dir)}')
        runner.train()
    last = osp.join(runner.work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            runner.logger.info(f'last checkpoint: {f.read().strip()}')
    runner.logger.info(f'logs: {osp.abspath(runner.log_dir)}')
    shutdown_launcher()


if __name__ == '__main__':
    main()
