"""Run a model on one image and write an overlay.

Segmentation models (e.g. GMS)::

    python demo/image_demo.py CONFIG CHECKPOINT IMAGE --out-file OUT.png

X-Decoder (``--task`` defaults to the config's ``test_cfg`` task)::

    # open-vocabulary segmentation: class names, comma-separated
    python demo/image_demo.py CONFIG CKPT skimage:astronaut --task semantic \\
        --texts "person,rocket,flag,sky" --out-file seg.png
    # referring segmentation: one sentence
    python demo/image_demo.py CONFIG CKPT photo.jpg --task referring --texts "the woman in orange"
    # captioning: no texts
    python demo/image_demo.py CONFIG CKPT photo.jpg --task caption
    # retrieval: each --texts value is one candidate sentence
    python demo/image_demo.py CONFIG CKPT photo.jpg --task retrieval \\
        --texts "an astronaut portrait" "a dog on the grass"

FrozenSeg (semantic / panoptic / instance, any class names; the overlay names
each segment; NAME=frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes,
CFG=configs/frozenseg/$NAME.py)::

    python demo/image_demo.py $CFG work_dirs/$NAME/epoch_5.pth \
        data/synthshapes/images/val_novel/003200.png --task semantic \
        --texts "red star" "green triangle" "dotted background" "striped background"

SAM (coordinates in the image's pixels)::

    # one object per box
    python demo/image_demo.py CONFIG CKPT photo.jpg --box 40 30 200 180 --box 220 40 300 120
    # one object from points x,y,label (1 foreground, 0 background)
    python demo/image_demo.py CONFIG CKPT photo.jpg --points 120,80,1 150,90,0
    # every mask (segment_anything's automatic mask generator)
    python demo/image_demo.py CONFIG CKPT photo.jpg --auto

IMAGE is a file or ``skimage:NAME`` for an image bundled with scikit-image
(``skimage:astronaut``, ``skimage:coffee``, ``skimage:chelsea``, ...).
CHECKPOINT may be ``none`` to use only the weights the config itself loads
(e.g. to smoke-test a config).
"""
import argparse
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from mmengine.utils import mkdir_or_exist

from mmfusion.apis import XDecoderInferencer, inference_model, init_model, load_image
from mmfusion.apis.inference import build_test_pipeline, prepare_inputs
from mmfusion.models.sam import SAM
from mmfusion.models.xdecoder import SEG_TASKS, TASKS
from mmfusion.registry import VISUALIZERS
from mmfusion.structures.prompt_sampling import build_prompts
from mmfusion.utils import register_all_modules


def parse_texts(task: str, values: Optional[List[str]]) -> Union[None, str, List[str]]:
    """``--texts`` values -> the Inferencer's ``texts`` for ``task``."""
    if values is None:
        return None
    if task in SEG_TASKS:  # class names: comma-separated and/or separate values
        return [name.strip() for value in values for name in value.split(',') if name.strip()]
    if task == 'referring':  # one sentence, quoted or not
        return ' '.join(values)
    return list(values)  # retrieval: one candidate sentence per value


def describe(sample, task: str, score_thr: float = 0.3) -> str:
    """A short text summary of ``task``'s prediction."""
    classes = sample.metainfo.get('classes') or []

    def name(label: int) -> str:
        return classes[label] if label < len(classes) else str(label)

    if task == 'semantic':
        seg = sample.pred_sem_seg.data[0]
        labels, counts = seg.unique(return_counts=True)
        order = counts.argsort(descending=True)
        found = [f'{name(int(labels[k]))} {counts[k].item() / seg.numel():.1%}' for k in order]
        return f'semantic: {len(found)} of {len(classes)} classes found: ' + ', '.join(found)
    if task == 'panoptic':
        from mmdet.evaluation.functional import INSTANCE_OFFSET
        pan = sample.pred_panoptic_seg.sem_seg[0]
        ids, counts = pan.unique(return_counts=True)
        parts = []
        for k in counts.argsort(descending=True).tolist():
            label, instance = int(ids[k]) % INSTANCE_OFFSET, int(ids[k]) // INSTANCE_OFFSET
            text = 'void' if label == len(classes) else name(label)
            text += f' #{instance}' if instance else ''
            parts.append(f'{text} {counts[k].item() / pan.numel():.1%}')
        return f'panoptic: {len(parts)} segments: ' + ', '.join(parts)
    if task == 'instance':
        inst = sample.pred_instances
        keep = [k for k in inst.scores.argsort(descending=True).tolist()
                if inst.scores[k] >= score_thr]
        parts = [f'{name(int(inst.labels[k]))} {inst.scores[k]:.2f} '
                 f'({inst.masks[k].float().mean().item():.1%})' for k in keep]
        return (f'instance: {len(parts)} instances with score >= {score_thr}'
                + (': ' + ', '.join(parts) if parts else ''))
    if task == 'referring':
        share = sample.pred_sem_seg.data.float().mean().item()
        return f'referring "{sample.metainfo["text"]}": the mask covers {share:.1%} of the image'
    if task == 'caption':
        return f'caption: {sample.pred_caption}'
    scores = sample.pred_retrieval_scores.tolist()
    texts = sample.metainfo['texts']
    lines = [f'{rank}. {scores[k]:.3f}  {texts[k]}' for rank, k in
             enumerate(sorted(range(len(scores)), key=lambda i: -scores[i]), 1)]
    return 'retrieval (softmax over the candidates):\n' + '\n'.join(lines)


def parse_points(values: Sequence[str]) -> Tuple[List[List[float]], List[int]]:
    """``X,Y,LABEL`` strings -> points and labels."""
    points, labels = [], []
    for value in values:
        parts = value.split(',')
        try:
            x, y, label = float(parts[0]), float(parts[1]), int(parts[2])
            if len(parts) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f'--points takes X,Y,LABEL values such as 120,80,1; got {value!r}')
        points.append([x, y])
        labels.append(label)
    return points, labels


def run_sam(model, image: Union[str, np.ndarray], args: argparse.Namespace,
            parser: argparse.ArgumentParser) -> None:
    """Prompted or automatic masks of a SAM, drawn with the prompts."""
    if args.auto and (args.box or args.points):
        parser.error('--auto segments everything; it takes no --box/--points')
    if not args.auto and not (args.box or args.points):
        parser.error(f'{args.config} is a SAM: give --box, --points or --auto')
    batch = prepare_inputs([image], build_test_pipeline(model.cfg))[0]
    sample = batch['data_samples']
    if args.auto:
        model.test_cfg['mode'] = 'auto'
    else:
        try:
            points, labels = parse_points(args.points or [])
            sample.prompts = build_prompts(args.box, points or None, labels or None,
                                           sample.metainfo.get('scale_factor', (1.0, 1.0)))
        except ValueError as e:
            parser.error(str(e))
        h, w = sample.metainfo['ori_shape'][:2]
        outside = [b for b in args.box or [] if min(b) < 0 or b[2] > w or b[3] > h]
        outside += [p for p in points if not (0 <= p[0] < w and 0 <= p[1] < h)]
        if outside:
            parser.error(f'prompts {outside} lie outside the {w}x{h} image')
    with torch.no_grad():
        batch = pseudo_collate([dict(inputs=batch['inputs'], data_samples=sample)])
        result = model.test_step(batch)[0]
    if 'pred_sem_seg' in result:
        del result.pred_sem_seg  # the instances are drawn one by one
    visualizer = VISUALIZERS.build(dict(type='FusionVisualizer', name='image_demo',
                                        alpha=args.alpha))
    rgb = mmcv.bgr2rgb(image) if isinstance(image, np.ndarray) else \
        mmcv.imread(image, channel_order='rgb')
    visualizer.add_datasample('demo', rgb, result, draw_gt=False, out_file=args.out_file,
                              pred_score_thr=0.0)
    inst = result.pred_instances
    print(f'{len(inst)} masks; predicted IoU: '
          + ', '.join(f'{s:.2f}' for s in inst.scores.tolist()))
    print(f'wrote {args.out_file}')


def parse_args(argv: Optional[Sequence[str]] = None
               ) -> Tuple[argparse.Namespace, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(
        description='mmfusion image demo', formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file, or "none"')
    parser.add_argument('image', help='image file, or skimage:NAME (e.g. skimage:astronaut)')
    parser.add_argument('--out-file', default='outputs/demo.png', help='overlay PNG to write')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--alpha', type=float, default=0.5, help='opacity of the predicted mask')
    parser.add_argument('--task', choices=TASKS,
                        help="X-Decoder task (default: the config's test_cfg task)")
    parser.add_argument('--texts', nargs='+', metavar='TEXT',
                        help='X-Decoder texts. semantic/instance/panoptic: class names, '
                             'comma-separated ("person,sky,grass"; default: the model\'s '
                             'classes); referring: one sentence; retrieval: one candidate '
                             'sentence per value; caption: none')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='instance task: lowest score drawn and printed')
    parser.add_argument('--box', nargs=4, type=float, action='append',
                        metavar=('X1', 'Y1', 'X2', 'Y2'),
                        help='SAM: a box prompt (repeat for several objects)')
    parser.add_argument('--points', nargs='+', metavar='X,Y,LABEL',
                        help='SAM: point prompts of one object (label 1 foreground, 0 background); '
                             'with --box, added to every box')
    parser.add_argument('--auto', action='store_true',
                        help='SAM: all masks of the image (automatic mask generation)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, e.g. model.text_encoder.checkpoint=None')
    return parser.parse_args(argv), parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args, parser = parse_args(argv)
    register_all_modules()
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    try:
        image = load_image(args.image)
    except ValueError as e:
        parser.error(str(e))
    model = init_model(args.config, checkpoint, device=args.device, cfg_options=args.cfg_options)
    mkdir_or_exist(osp.dirname(osp.abspath(args.out_file)))

    if isinstance(model, SAM):
        run_sam(model, image, args, parser)
        return
    if args.box or args.points or args.auto:
        parser.error(f'--box/--points/--auto are for SAM; {args.config} builds a '
                     f'{type(model).__name__}')

    tasks = getattr(model, 'tasks', None)  # multi-task models say which tasks they have
    if tasks:
        task = args.task or model.default_task
        if task not in tasks:
            parser.error(f'--task {task}: {args.config} predicts {", ".join(tasks)}')
        if task == 'caption' and args.texts:
            parser.error('--task caption takes no --texts')
        inferencer = XDecoderInferencer(model)
        inferencer.visualizer.alpha = args.alpha
        texts = parse_texts(task, args.texts)
        try:  # bad --texts are usage errors; the model's own errors raise as they are
            inferencer.metainfo(task, texts, 1)
        except ValueError as e:
            parser.error(str(e))
        sample = inferencer(image, task=task, texts=texts)
        inferencer.visualize(image, sample, task, out_file=args.out_file,
                             score_thr=args.score_thr)
        print(describe(sample, task, args.score_thr))
        print(f'wrote {args.out_file}')
        return

    if args.task or args.texts:
        parser.error(f'--task/--texts are for multi-task models (X-Decoder, FrozenSeg); '
                     f'{args.config} builds a {type(model).__name__}')
    result = inference_model(model, image)
    visualizer = VISUALIZERS.build(dict(type='FusionVisualizer', name='image_demo',
                                        alpha=args.alpha))
    visualizer.dataset_meta = model.dataset_meta
    rgb = mmcv.bgr2rgb(image) if isinstance(image, np.ndarray) else \
        mmcv.imread(image, channel_order='rgb')
    visualizer.add_datasample('demo', rgb, result, draw_gt=False, out_file=args.out_file)
    fg = result.pred_sem_seg.data.float().mean().item()
    print(f'wrote {args.out_file} (predicted foreground: {fg:.1%} of the image)')


if __name__ == '__main__':
    main()
