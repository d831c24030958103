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
(e.g. to smoke-test a config). The demo is a command line over the Inferencers
of ``mmfusion.apis`` (OpenVocabSeg / ReferringSeg / Caption / Retrieval,
PromptableSeg, MedicalSeg); ``--out-dir DIR`` also writes their JSON
predictions (masks as COCO RLE) to ``DIR/preds/``.
"""
import argparse
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.config import Config, DictAction
from mmengine.utils import mkdir_or_exist

from mmfusion.apis import MedicalSegInferencer, PromptableSegInferencer, XDecoderInferencer
from mmfusion.apis.inference import load_image
from mmfusion.apis.xdecoder_inferencer import TASKS
from mmfusion.utils import register_all_modules
from mmfusion.utils.compile import add_compile_args, compile_arg

SEG_TASKS = ('semantic', 'instance', 'panoptic')
MULTI_TASK = ('XDecoder', 'FrozenSeg')


def parse_texts(task: str, values: Optional[List[str]]) -> Union[None, str, List[str]]:
    """``--texts`` values -> the Inferencer's ``texts`` for ``task``."""
    if values is None:
        return None
    if task in SEG_TASKS:  # class names: comma-separated and/or separate values
        return [name.strip() for value in values for name in value.split(',') if name.strip()]
    if task == 'referring':  # one sentence, quoted or not
        return ' '.join(values)
    return list(values)  # retrieval: one candidate sentence per value


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


def parse_args(argv: Optional[Sequence[str]] = None
               ) -> Tuple[argparse.Namespace, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(
        description='mmfusion image demo', formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file, or "none"')
    parser.add_argument('image', help='image file, or skimage:NAME (e.g. skimage:astronaut)')
    parser.add_argument('--out-file', default='outputs/demo.png', help='overlay PNG to write')
    parser.add_argument('--out-dir', default=None,
                        help="also write the Inferencer's outputs there: preds/NAME.json "
                             '(masks as COCO RLE) and vis/NAME.png')
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
    add_compile_args(parser, 'inference')
    return parser.parse_args(argv), parser


def model_type(args: argparse.Namespace) -> str:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg.model.get('type', '')


def sam_call(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """The PromptableSegInferencer kwargs of the SAM flags."""
    if args.auto and (args.box or args.points):
        parser.error('--auto segments everything; it takes no --box/--points')
    if not args.auto and not (args.box or args.points):
        parser.error(f'{args.config} is a SAM: give --box, --points or --auto')
    if args.auto:
        return dict(auto=True)
    try:
        points, labels = parse_points(args.points or [])
    except ValueError as e:
        parser.error(str(e))
    return dict(boxes=args.box, points=points or None, labels=labels or None)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args, parser = parse_args(argv)
    register_all_modules()
    weights = False if args.checkpoint.lower() == 'none' else args.checkpoint
    try:
        image = load_image(args.image)
    except ValueError as e:
        parser.error(str(e))
    if isinstance(image, str) and not osp.isfile(image):
        parser.error(f'image not found: {image}')
    kind = model_type(args)
    build = dict(weights=weights, device=args.device, cfg_options=args.cfg_options,
                 show_progress=False, compile=compile_arg(args))
    if kind != 'SAM' and (args.box or args.points or args.auto):
        parser.error(f'--box/--points/--auto are for SAM; {args.config} builds a {kind}')
    if kind not in MULTI_TASK and (args.task or args.texts):
        parser.error(f'--task/--texts are for multi-task models (X-Decoder, FrozenSeg); '
                     f'{args.config} builds a {kind}')

    if kind in MULTI_TASK:
        dispatcher = XDecoderInferencer(args.config, weights or None, args.device,
                                        args.cfg_options, compile=build['compile'])
        task = args.task or dispatcher.model.default_task
        if task not in dispatcher.tasks:
            parser.error(f'--task {task}: {args.config} predicts {", ".join(dispatcher.tasks)}')
        if task == 'caption' and args.texts:
            parser.error('--task caption takes no --texts')
        texts = parse_texts(task, args.texts)
        try:  # bad --texts are usage errors; the model's own errors raise as they are
            dispatcher.metainfo(task, texts, 1)
        except ValueError as e:
            parser.error(str(e))
        inferencer = dispatcher.inferencer_for(task)
        call = dispatcher.task_kwargs(task, texts)
        if task != 'caption' and task != 'retrieval':
            call['alpha'] = args.alpha
        if task in SEG_TASKS:
            call['score_thr'] = args.score_thr
    elif kind == 'SAM':
        call = dict(sam_call(args, parser), alpha=args.alpha)
        inferencer = PromptableSegInferencer(args.config, **build)
    elif kind == 'GMS':
        call = dict(alpha=args.alpha)
        inferencer = MedicalSegInferencer(args.config, **build)
    elif kind == 'SEMat':
        parser.error(f'{args.config} is a SEMat: use demo/matting_demo.py (image + --box)')
    else:
        parser.error(f'{args.config} builds a {kind}; the image demo runs X-Decoder, FrozenSeg, '
                     'SAM and GMS models (audio_demo.py, matting_demo.py and the web demo '
                     'cover the others)')

    try:
        out = inferencer(image, out_dir=args.out_dir, **call)
    except ValueError as e:
        if kind in MULTI_TASK:
            raise
        parser.error(str(e))
    mkdir_or_exist(osp.dirname(osp.abspath(args.out_file)))
    inferencer.save_visualization(out['visualization'][0], args.out_file)
    pred = out['predictions'][0]
    if kind in MULTI_TASK and task in SEG_TASKS:
        print(inferencer.describe(pred, args.score_thr))
    elif kind == 'GMS':
        print(f'wrote {args.out_file} ({inferencer.describe(pred)})')
        return
    else:
        print(inferencer.describe(pred))
    print(f'wrote {args.out_file}')


if __name__ == '__main__':
    main()
