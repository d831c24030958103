"""Zero-shot classification of one point cloud or mesh by free-form class names
(a command line over :class:`~mmfusion.apis.PointCloudZeroShotInferencer`).

::

    python demo/pointcloud_demo.py FILE --texts "a cone,a torus,a cube" \\
        [--config CONFIG] [--checkpoint CKPT] [--out-file views.png] [--num-points N]

FILE is a point cloud (.ply, .xyz, .txt, .npy) or a mesh (.off, .obj, .stl,
whose surface is sampled). The cloud is read with ``LoadPointsFromFile`` (x,
y, z only), normalised to the unit sphere and resampled by the model's data
preprocessor (evaluation mode: deterministic), then every comma-separated
entry of ``--texts`` is embedded as a class name with the model's test prompt
templates and scored against the cloud (``PointCLIPAligner.predict``). The
ranking (rank, name, probability, most likely first) is printed.

The PNG (default ``<stem>_pointcloud_demo.png`` in the current directory) has
four panels: the three depth views the 2D teacher renders, and the points
(x across, z up) coloured by the teacher's saliency: each view's saliency map,
upsampled bicubically to the view size, is read at the point's pixel and the
three readings are averaged.

``--config``/``--checkpoint`` default to the tiny SynthShapes3D zero-shot
recipe that ``make i2pmae`` trains. The trained checkpoint holds every weight,
so weight files named in the config (the CLIP and I2P-MAE ``checkpoint=``
keys) that are not on disk are skipped with a warning.
"""
import argparse
import os.path as osp
from typing import List, Optional, Sequence, Union

import mmcv

from mmfusion.apis import PointCloudZeroShotInferencer
from mmfusion.apis.sequence_inferencers import MESH_SUFFIXES
from mmfusion.utils.compile import add_compile_args, compile_arg

NAME = 'zeroshot_i2pmae-tiny_1xb32-300it_synthshapes3d'
DEFAULT_CONFIG = f'configs/i2pmae/{NAME}.py'
DEFAULT_CHECKPOINT = f'work_dirs/{NAME}/iter_300.pth'


def parse_texts(texts: str) -> List[str]:
    """``"a cone, a torus"`` -> ``['a cone', 'a torus']``: at least two, no repeats."""
    names = [t.strip() for t in texts.split(',') if t.strip()]
    if len(names) < 2:
        raise ValueError(f'--texts needs at least 2 comma-separated class names to rank, got '
                         f'{len(names)} ({texts!r}); e.g. --texts "a cone,a torus,a cube"')
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f'--texts names {repeated} more than once; give each class once')
    return names


def run(path: str, texts: Sequence[str], config: str = DEFAULT_CONFIG,
        checkpoint: str = DEFAULT_CHECKPOINT, out_file: Optional[str] = None,
        num_points: Optional[int] = None, device: str = 'cpu',
        compile: Union[bool, dict] = False) -> dict:
    """Rank ``texts`` for the cloud in ``path`` and write the views PNG.

    Returns dict with ``ranking`` (``[(name, probability), ...]``, most likely
    first), ``out_file``, ``points`` (N, 3) the model's input cloud and
    ``saliency`` (N,).
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint} (`make i2pmae` trains the '
                                'tiny SynthShapes3D zero-shot model)')
    if not osp.isfile(config):
        raise FileNotFoundError(f'config not found: {config}')
    if num_points is not None and num_points < 1:
        raise ValueError(f'--num-points must be >= 1, got {num_points}')
    inferencer = PointCloudZeroShotInferencer(config, checkpoint, device=device,
                                              num_points=num_points, show_progress=False,
                                              compile=compile)
    result = inferencer(path, texts=list(texts), top_k=1, return_datasamples=True)
    sample, image = result['predictions'][0], result['visualization'][0]
    ranking = inferencer.ranking(sample)

    kind = 'surface points sampled from the mesh' if osp.splitext(path)[1].lower() in \
        MESH_SUFFIXES else 'points'
    print(f'{path}: {sample.metainfo["num_points"]} {kind}, {len(sample.points)} to the model')
    width = max(len('class'), *(len(n) for n, _ in ranking))
    print(f'{"rank":>4}  {"class":<{width}}  probability')
    for rank, (name, prob) in enumerate(ranking, 1):
        print(f'{rank:>4}  {name:<{width}}  {prob:11.4f}')

    if out_file is None:
        out_file = f'{osp.splitext(osp.basename(path))[0]}_pointcloud_demo.png'
    mmcv.imwrite(mmcv.rgb2bgr(image), out_file)
    print(f'wrote {out_file}')
    return dict(ranking=ranking, out_file=out_file, points=sample.points.numpy(),
                saliency=sample.saliency)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description='zero-shot point-cloud classification demo',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('file', help='point cloud (.ply .xyz .txt .npy) or mesh (.off .obj .stl)')
    parser.add_argument('--texts', required=True,
                        help='comma-separated class names, at least 2, e.g. "a cone,a torus"')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--checkpoint', default=DEFAULT_CHECKPOINT)
    parser.add_argument('--out-file', default=None,
                        help='PNG to write (default: <stem>_pointcloud_demo.png here)')
    parser.add_argument('--num-points', type=int, default=None,
                        help="points the model sees (mesh samples too); default the config's "
                        "preprocessor num_points (1024 in the default recipe)")
    parser.add_argument('--device', default='cpu')
    add_compile_args(parser, 'inference')
    args = parser.parse_args(argv)
    try:
        run(args.file, parse_texts(args.texts), args.config, args.checkpoint, args.out_file,
            args.num_points, args.device, compile_arg(args))
    except (ValueError, TypeError, FileNotFoundError) as e:
        parser.exit(1, f'{parser.prog}: error: {e}\n')


if __name__ == '__main__':
    main()
