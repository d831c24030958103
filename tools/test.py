"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``."""
import argparse
import json
import os
import os.path as osp

from mmengine.config import Config, DictAction

from mmfusion.utils import explain_unknown_type, register_all_modules
from mmfusion.utils.compile import add_compile_args, apply_compile_args
from mmfusion.utils.dist import prepare_launcher, runner_class, shutdown_launcher


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) an mmfusion model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log goes')
    parser.add_argument('--out', help='dump every prediction to this pickle file')
    parser.add_argument('--show-dir', help='write a drawing of every prediction into this folder')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. test_dataloader.batch_size=4')
    parser.add_argument('--amp', action='store_true',
                        help='mixed-precision inference: fp16 autocast on CUDA, bf16 on CPU')
    parser.add_argument('--no-progress', action='store_true',
                        help='no progress bar (batches, rate, ETA on stderr)')
    add_compile_args(parser, 'test')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir:
        hook = cfg.default_hooks.setdefault('visualization', dict(type='FusionVisualizationHook'))
        hook.update(draw=True, out_dir=osp.abspath(args.show_dir))
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type='DumpResults', out_file_path=args.out)]
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    if not args.no_progress:
        cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='ProgressBarHook')]
    # mmengine compiles nothing in Runner.test(): CompileHook compiles test_step.
    apply_compile_args(cfg, args)
    prepare_launcher(cfg, args.launcher)

    with explain_unknown_type():
        runner = runner_class(cfg).from_cfg(cfg)
        metrics = runner.test()
    if args.show_dir:
        runner.logger.info(f'drawings written to {osp.abspath(args.show_dir)}')
    if args.out:
        runner.logger.info(f'predictions written to {osp.abspath(args.out)}')
    # Last line of stdout: the metrics as JSON, for scripts.
    # default=float: metrics may be numpy scalars (mmseg's IoUMetric returns float32).
    print(json.dumps({'checkpoint': args.checkpoint, **metrics}, default=float), flush=True)
    shutdown_launcher()


if __name__ == '__main__':
    main()
