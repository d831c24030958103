"""PointsScaleAndTranslate and PointsRandomRotate: the math, the RNG, the normals."""
import math

import numpy as np
import pytest

from mmfusion.datasets.transforms import PointsRandomRotate, PointsScaleAndTranslate
from mmfusion.datasets.transforms.point_transforms import rotation_matrix
from mmfusion.registry import TRANSFORMS

RNG = np.random.RandomState(0)
XYZ = RNG.uniform(-1, 1, (50, 3)).astype(np.float32)
NORMALS = RNG.normal(size=(50, 3))
NORMALS = (NORMALS / np.linalg.norm(NORMALS, axis=1, keepdims=True)).astype(np.float32)
RGB = RNG.randint(0, 256, (50, 3)).astype(np.float32)


def test_scale_and_translate_matches_hand_computation():
    points = np.concatenate([XYZ, NORMALS], axis=1)
    transform = TRANSFORMS.build(dict(type='PointsScaleAndTranslate'))
    assert transform.scale == (2 / 3, 3 / 2) and transform.translate == 0.2
    np.random.seed(42)
    out = transform(dict(points=points.copy()))
    np.random.seed(42)  # Point-MAE's order: three scale factors, then three shifts
    scale = np.random.uniform(2 / 3, 3 / 2, size=3)
    shift = np.random.uniform(-0.2, 0.2, size=3)
    np.testing.assert_allclose(out['points'][:, :3], XYZ * scale + shift, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out['points'][:, 3:], NORMALS)  # other columns kept
    np.testing.assert_allclose(out['pcd_scale_factor'], scale, rtol=1e-6)
    np.testing.assert_allclose(out['pcd_trans'], shift, rtol=1e-6)
    assert out['points'].dtype == np.float32
    # Per-axis (anisotropic) factors within the range; the input array is not modified.
    assert len(set(np.round(scale, 6))) == 3 and ((2 / 3 <= scale) & (scale <= 3 / 2)).all()
    np.testing.assert_array_equal(points[:, :3], XYZ)


def test_scale_and_translate_options():
    np.random.seed(0)
    out = PointsScaleAndTranslate(scale=(2, 2), translate=0)(dict(points=XYZ.copy()))
    np.testing.assert_allclose(out['points'], XYZ * 2)
    with pytest.raises(ValueError, match='0 < low <= high'):
        PointsScaleAndTranslate(scale=(1.5, 0.5))
    with pytest.raises(ValueError, match='translate must be >= 0'):
        PointsScaleAndTranslate(translate=-1)
    with pytest.raises(KeyError, match='needs results\\["points"\\]'):
        PointsScaleAndTranslate()(dict(points_path='a.ply'))
    with pytest.raises(ValueError, match=r'shape \(50, 2\)'):
        PointsScaleAndTranslate()(dict(points=XYZ[:, :2]))


def test_rotation_matrices_are_rotations():
    for axis, fixed in (('x', 0), ('y', 1), ('z', 2)):
        rot = rotation_matrix(axis, 0.7)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(rot), 1)
        np.testing.assert_allclose(rot[:, fixed], np.eye(3)[fixed])  # the axis stays put
    # Right-handed: a quarter turn about z takes x to y, about y takes z to x.
    np.testing.assert_allclose(rotation_matrix('z', math.pi / 2) @ [1, 0, 0], [0, 1, 0],
                               atol=1e-12)
    np.testing.assert_allclose(rotation_matrix('y', math.pi / 2) @ [0, 0, 1], [1, 0, 0],
                               atol=1e-12)
    with pytest.raises(ValueError, match='"x", "y" or "z"'):
        PointsRandomRotate(axis='w')


@pytest.mark.parametrize('axis,fixed', [('z', 2), ('y', 1)])
def test_random_rotate_preserves_norms_and_the_axis(axis, fixed):
    np.random.seed(3)
    out = PointsRandomRotate(axis=axis)(dict(points=np.concatenate([XYZ, RGB], axis=1)))
    np.random.seed(3)
    angle = np.random.uniform(-math.pi, math.pi)
    assert out['pcd_rotation_angle'] == pytest.approx(angle)
    rotated = out['points'][:, :3]
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=1), np.linalg.norm(XYZ, axis=1),
                               rtol=1e-5)
    np.testing.assert_allclose(rotated[:, fixed], XYZ[:, fixed], atol=1e-6)
    np.testing.assert_allclose(rotated, XYZ @ rotation_matrix(axis, angle).T, atol=1e-5)
    # Pairwise distances are kept (a rigid motion), colours are untouched.
    d_in = np.linalg.norm(XYZ[:, None] - XYZ[None], axis=-1)
    d_out = np.linalg.norm(rotated[:, None] - rotated[None], axis=-1)
    np.testing.assert_allclose(d_out, d_in, atol=1e-5)
    np.testing.assert_array_equal(out['points'][:, 3:], RGB)


def test_random_rotate_turns_named_or_given_normals():
    points = np.concatenate([XYZ, RGB, NORMALS], axis=1)
    fields = ['x', 'y', 'z', 'red', 'green', 'blue', 'nx', 'ny', 'nz']
    np.random.seed(5)
    out = PointsRandomRotate(axis='y')(dict(points=points, point_fields=fields))
    rot = out['pcd_rotation'].astype(np.float64)
    np.testing.assert_allclose(out['points'][:, 6:], NORMALS @ rot.T, atol=1e-5)
    np.testing.assert_array_equal(out['points'][:, 3:6], RGB)
    # Point-normal dot products (the surface's local geometry) are preserved.
    np.testing.assert_allclose((out['points'][:, :3] * out['points'][:, 6:]).sum(1),
                               (XYZ * NORMALS).sum(1), atol=1e-5)
    # ModelNet txt: x,y,z,nx,ny,nz without names -> normal_dims.
    txt = np.concatenate([XYZ, NORMALS], axis=1)
    np.random.seed(5)
    out = PointsRandomRotate(axis='y', normal_dims=(3, 4, 5))(
        dict(points=txt, point_fields=['x', 'y', 'z', 'f3', 'f4', 'f5']))
    np.testing.assert_allclose(out['points'][:, 3:], NORMALS @ rot.T, atol=1e-5)
    np.random.seed(5)
    unnamed = PointsRandomRotate(axis='y')(dict(points=txt))  # no names: normals kept
    np.testing.assert_array_equal(unnamed['points'][:, 3:], NORMALS)
    with pytest.raises(ValueError, match=r'normal columns \[1, 2, 3\]'):
        PointsRandomRotate(normal_dims=(1, 2, 3))(dict(points=txt))
    with pytest.raises(ValueError, match='name 3 columns'):
        PointsRandomRotate(normal_dims=(3, 4))


def test_random_rotate_angle_range():
    np.random.seed(0)
    transform = TRANSFORMS.build(dict(type='PointsRandomRotate', axis='z', max_angle=0.1))
    angles = [transform(dict(points=XYZ))['pcd_rotation_angle'] for _ in range(200)]
    assert max(np.abs(angles)) <= 0.1 and min(angles) < -0.05 and max(angles) > 0.05
    out = PointsRandomRotate(max_angle=0)(dict(points=XYZ))
    np.testing.assert_allclose(out['points'], XYZ, atol=1e-7)
    with pytest.raises(ValueError, match='max_angle must be >= 0'):
        PointsRandomRotate(max_angle=-1)
