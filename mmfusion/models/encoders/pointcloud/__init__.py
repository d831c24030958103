from .ops import ball_query, farthest_point_sample, gather_points, knn_group
from .point_mae import PointMAEEncoder
from .pointnet2 import PointNet2SSG

__all__ = [
    'PointMAEEncoder', 'PointNet2SSG', 'farthest_point_sample', 'knn_group', 'ball_query',
    'gather_points'
]
