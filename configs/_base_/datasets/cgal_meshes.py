# Real meshes: the .off models shipped by Debian's libcgal-demo, in the ModelNet40 mesh layout
# (`make cgal_meshes`: tools/dataset_converters/cgal_meshes_to_modelnet.py). Only a test
# split exists, so the probe scores k-fold cross-validation on it (--cv 4). The four
# categories with >= 5 meshes (37 meshes); chance is about 1/3 (the largest class).
dataset_type = 'ModelNet40Dataset'
data_root = 'data/cgal_meshes'
classes = ['animal', 'human', 'mechanical_part', 'sphere']
test_pipeline = [
    dict(type='LoadPointsFromFile', mesh_samples=2048),
    dict(type='PackFusionInputs'),
]
test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', layout='mesh',
                 metainfo=dict(classes=classes), pipeline=test_pipeline, test_mode=True))
