"""Zero-shot classification of one point cloud or mesh by free-form class names.

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
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmfusion.apis import init_model
from mmfusion.datasets.transforms import LoadPointsFromFile
from mmfusion.models.encoders.pointcloud.projection import gather_pixel_features
from mmfusion.utils.config_weights import drop_weight_files

NAME = 'zeroshot_i2pmae-tiny_1xb32-300it_synthshapes3d'
DEFAULT_CONFIG = f'configs/i2pmae/{NAME}.py'
DEFAULT_CHECKPOINT = f'work_dirs/{NAME}/iter_300.pth'
AXIS_NAMES = 'xyz'


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


def point_preprocessor_cfg(cfg: Config) -> dict:
    pre = cfg.model.get('data_preprocessor') or {}
    points = pre.get('points') if isinstance(pre, dict) else None
    if not points:
        raise ValueError(f'the config\'s model.data_preprocessor has no `points` preprocessor '
                         f'({pre.get("type") if isinstance(pre, dict) else pre}); expected '
                         'MultiModalDataPreprocessor(points=PointDataPreprocessor(...))')
    return points


def point_saliency(saliency: torch.Tensor, pix: torch.Tensor, image_size: int) -> torch.Tensor:
    """(B, V, h, w) saliency maps and (B, V, N, 2) pixels -> (B, N) per-point
    saliency: each map upsampled bicubically to the view size, read at the
    point's pixel, averaged over the views."""
    B, V = saliency.shape[:2]
    maps = F.interpolate(saliency.flatten(0, 1)[:, None].float(), size=(image_size, image_size),
                         mode='bicubic', align_corners=False).unflatten(0, (B, V))
    return gather_pixel_features(maps, pix, image_size)[..., 0].mean(1)


def draw_panels(views: np.ndarray, points: np.ndarray, saliency: np.ndarray,
                view_axes: Sequence[Sequence[int]], title: str, out_file: str) -> None:
    """Write the V depth views and the saliency-coloured scatter side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = len(views) + 1
    fig = Figure(figsize=(4 * panels, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    for i, (ax, view) in enumerate(zip(axes, views)):
        row, col, depth = (AXIS_NAMES[a] for a in view_axes[i])
        ax.imshow(view, cmap='gray')
        ax.set_title(f'depth view {i + 1}: rows {row}, cols {col}, depth {depth}', fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[-1]
    order = np.argsort(saliency)  # the most salient points drawn last, on top
    sc = ax.scatter(points[order, 0], points[order, 2], c=saliency[order], s=6, cmap='viridis')
    ax.set_aspect('equal')
    ax.set_xlabel('x')
    ax.set_ylabel('z')
    ax.set_title('points (x, z) by 2D saliency (mean of views)', fontsize=10)
    fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out_file)


def run(path: str, texts: Sequence[str], config: str = DEFAULT_CONFIG,
        checkpoint: str = DEFAULT_CHECKPOINT, out_file: Optional[str] = None,
        num_points: Optional[int] = None, device: str = 'cpu') -> dict:
    """Rank ``texts`` for the cloud in ``path`` and write the views PNG.

    Returns dict with ``ranking`` (``[(name, probability), ...]``, most likely
    first), ``out_file``, ``points`` (N, 3) the model's input cloud and
    ``saliency`` (N,).
    """
    texts = list(texts)
    if len(texts) < 2:
        raise ValueError(f'at least 2 class names are needed to rank, got {texts}')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint} (`make i2pmae` trains the '
                                'tiny SynthShapes3D zero-shot model)')
    if not osp.isfile(config):
        raise FileNotFoundError(f'config not found: {config}')
    if num_points is not None and num_points < 1:
        raise ValueError(f'--num-points must be >= 1, got {num_points}')
    cfg = Config.fromfile(config)
    if cfg.model.get('type') != 'PointCLIPAligner':
        raise ValueError(f'{config}: the demo needs a PointCLIPAligner model, got '
                         f'{cfg.model.get("type")}')
    points_cfg = point_preprocessor_cfg(cfg)
    if num_points is not None:
        points_cfg['num_points'] = num_points
    num_points = points_cfg.get('num_points')
    dropped = drop_weight_files(cfg.model, only_missing=True)
    if dropped:
        warnings.warn('weight files of the config not found, skipped (the trained checkpoint '
                      f'holds all weights): {"; ".join(dropped)}', stacklevel=2)

    loader = LoadPointsFromFile(use_dims=[0, 1, 2], mesh_samples=num_points or 2048)
    cloud = loader(dict(points_path=path))['points']  # ValueError naming the file

    model = init_model(cfg, checkpoint, device=device)
    batch = model.data_preprocessor(dict(inputs=dict(points=[torch.from_numpy(cloud)])),
                                    training=False)
    inputs = batch['inputs']
    with torch.no_grad():
        sample = model.predict(inputs, classes=texts)[0]
        teacher = model.teacher(inputs['points'], inputs.get('points_lengths'))
    scores = sample.pred_score.float().cpu().numpy()
    order = np.argsort(-scores, kind='stable')
    ranking = [(texts[i], float(scores[i])) for i in order]
    saliency = point_saliency(teacher['saliency'], teacher['pix'], model.teacher.image_size)

    n_model = inputs['points'].shape[1]
    kind = 'surface points sampled from the mesh' if osp.splitext(path)[1].lower() in \
        ('.off', '.obj', '.stl') else 'points'
    print(f'{path}: {len(cloud)} {kind}, {n_model} to the model')
    width = max(len('class'), *(len(n) for n in texts))
    print(f'{"rank":>4}  {"class":<{width}}  probability')
    for rank, (name, prob) in enumerate(ranking, 1):
        print(f'{rank:>4}  {name:<{width}}  {prob:11.4f}')

    if out_file is None:
        out_file = f'{osp.splitext(osp.basename(path))[0]}_pointcloud_demo.png'
    if osp.dirname(out_file):
        os.makedirs(osp.dirname(out_file), exist_ok=True)
    pts = inputs['points'][0, :, :3].float().cpu().numpy()
    sal = saliency[0].cpu().numpy()
    best, prob = ranking[0]
    draw_panels(teacher['views'][0].float().cpu().numpy(), pts, sal, model.teacher.views,
                f'{osp.basename(path)}: {best} ({prob:.1%})', out_file)
    print(f'wrote {out_file}')
    return dict(ranking=ranking, out_file=out_file, points=pts, saliency=sal)


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
    args = parser.parse_args(argv)
    try:
        run(args.file, parse_texts(args.texts), args.config, args.checkpoint, args.out_file,
            args.num_points, args.device)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(1, f'{parser.prog}: error: {e}\n')


if __name__ == '__main__':
    main()
