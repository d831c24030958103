# SynthShapes3D (tools/dataset_converters/generate_synthshapes3d.py, `make synthshapes3d`):
# procedural solids in the ModelNet40 resampled layout, 14 seen classes in train/val, all 18
# in test. `classes` equals mmfusion.datasets.synthshapes3d_meta.CLASSES (a test checks it);
# held_out never occur in train/val.
dataset_type = 'SynthShapes3DDataset'
data_root = 'data/synthshapes3d'
_bases = ['sphere', 'cube', 'cylinder', 'cone', 'torus', 'pyramid']
classes = [f'{m} {b}'.strip() for b in _bases for m in ('', 'tall', 'flat')]
held_out = ['tall cone', 'flat cube', 'sphere', 'tall torus']
seen_classes = [c for c in classes if c not in held_out]
num_points = 1024

# Clouds are normalised and resampled to num_points by PointDataPreprocessor.
point_preprocessor = dict(
    type='MultiModalDataPreprocessor',
    points=dict(type='PointDataPreprocessor', num_points=num_points, normalize=True))
train_pipeline = [
    dict(type='LoadPointsFromFile', use_dims=[0, 1, 2]),
    # Point-MAE's (2/3, 3/2) per-axis scaling would change the proportions that tell
    # 'tall cone' from 'cone'; a +-10% jitter keeps the labels true (README: deviations).
    dict(type='PointsScaleAndTranslate', scale=(0.9, 1.1), translate=0.2),
    dict(type='PackFusionInputs'),
]
test_pipeline = [
    dict(type='LoadPointsFromFile', use_dims=[0, 1, 2]),
    dict(type='PackFusionInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline,
                 test_mode=True))
test_dataloader = val_dataloader
