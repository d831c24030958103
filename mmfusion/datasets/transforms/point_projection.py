"""Render a point cloud as a depth image (for training a 2D model on depth views)."""
from typing import Optional, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmfusion.models.encoders.pointcloud.projection import VIEW_AXES, splat_depth_views
from mmfusion.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PointsToDepthImage(BaseTransform):
    """Turn ``results['points']`` into one depth view ``results['img']``.

    The view is rendered exactly as I2P-MAE's teacher renders it
    (``mmfusion.models.encoders.pointcloud.projection``), after the cloud is
    prepared as ``PointDataPreprocessor`` prepares it for the point models
    (centred, scaled to the unit sphere, ``num_points`` kept), so a 2D model
    trained on these images sees what the teacher shows it. The grey view
    in (0, 1) is stored as a (S, S, 3) uint8 image (0.5 = background).

    Args:
        image_size: side S of the view.
        kernel: splat size in pixels.
        view: index into the three views, or ``'random'`` (numpy's global
            RNG, seeded by mmengine) for augmentation.
        num_points: points kept before rendering (a random subset, or all
            plus repeats when fewer), ``None`` = all; the splat sums depths,
            so the count changes the image's contrast.
    """

    def __init__(self, image_size: int = 224, kernel: int = 5,
                 view: Union[int, str] = 'random', num_points: Optional[int] = None) -> None:
        if view != 'random' and view not in range(len(VIEW_AXES)):
            raise ValueError(f"PointsToDepthImage view must be 'random' or 0..{len(VIEW_AXES) - 1}"
                             f', got {view!r}')
        self.image_size = image_size
        self.kernel = kernel
        self.view = view
        self.num_points = num_points

    def transform(self, results: dict) -> dict:
        if 'points' not in results:
            raise KeyError('PointsToDepthImage needs results["points"] (load the cloud first); '
                           f'keys: {sorted(results)}')
        pts = np.asarray(results['points'], dtype=np.float32)[:, :3]
        where = results.get('points_path', results.get('sample_id', 'the cloud'))
        if pts.shape[0] == 0:
            raise ValueError(f'{where}: empty point cloud; expected at least one point')
        if not np.isfinite(pts).all():
            raise ValueError(f'{where}: NaN/inf coordinates; expected finite x, y, z')
        pts = pts - pts.mean(0, keepdims=True)
        pts = pts / max(float(np.linalg.norm(pts, axis=1).max()), 1e-12)
        if self.num_points is not None:
            n = pts.shape[0]
            if n >= self.num_points:
                pts = pts[np.random.permutation(n)[:self.num_points]]
            else:
                pts = np.concatenate([pts, pts[np.random.randint(n, size=self.num_points - n)]])
        view = np.random.randint(len(VIEW_AXES)) if self.view == 'random' else self.view
        images, _ = splat_depth_views(torch.from_numpy(pts)[None], self.image_size, self.kernel,
                                      views=[VIEW_AXES[view]])
        img = (images[0, 0].numpy() * 255).round().astype(np.uint8)
        results['img'] = np.repeat(img[..., None], 3, axis=2)
        results['img_shape'] = img.shape
        results['ori_shape'] = img.shape
        results['depth_view'] = view
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(image_size={self.image_size}, kernel={self.kernel}, '
                f'view={self.view!r}, num_points={self.num_points})')
