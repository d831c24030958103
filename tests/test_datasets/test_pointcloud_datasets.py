"""ModelNet40 (resampled txt and mesh layouts), ScanObjectNN (h5) and ShapeNet-55
datasets on small trees written in their real formats."""
import os

import numpy as np
import pytest
import torch

from mmfusion.datasets import ModelNet40Dataset, ScanObjectNNDataset, ShapeNet55Dataset
from mmfusion.datasets.pointcloud_datasets import SCANOBJECTNN_CLASSES
from mmfusion.registry import DATASETS

RNG = np.random.RandomState(0)
# mmengine collects garbage after serialising a dataset (~0.5 s with torch loaded): the
# tests that do not check serialisation build their datasets with serialize_data=False.
FAST = dict(serialize_data=False)


# -- ModelNet40, modelnet40_normal_resampled layout -------------------------------------------
def _modelnet_resampled(root, train=None, test=None):
    """Two classes (one with an underscore in its name), rows x,y,z,nx,ny,nz."""
    train = train or ['airplane_0001', 'airplane_0002', 'night_stand_0001']
    test = test or ['night_stand_0101', 'airplane_0627']
    root.mkdir(exist_ok=True)
    (root / 'modelnet40_shape_names.txt').write_text('airplane\nnight_stand\n')
    (root / 'modelnet40_train.txt').write_text('\n'.join(train) + '\n')
    (root / 'modelnet40_test.txt').write_text('\n'.join(test) + '\n\n')
    clouds = {}
    for sample_id in train + test:
        cls = sample_id.rsplit('_', 1)[0]
        (root / cls).mkdir(exist_ok=True)
        cloud = RNG.uniform(-1, 1, (30, 6))
        np.savetxt(root / cls / f'{sample_id}.txt', cloud, fmt='%.6f', delimiter=',')
        clouds[sample_id] = cloud
    return clouds


def test_modelnet_resampled_layout(tmp_path):
    clouds = _modelnet_resampled(tmp_path / 'mn40')
    pipeline = [dict(type='LoadPointsFromFile', use_dims=[0, 1, 2]), dict(type='PackFusionInputs')]
    ds = DATASETS.build(dict(type='ModelNet40Dataset', data_root=str(tmp_path / 'mn40'),
                             split='train', pipeline=pipeline))
    assert ds.metainfo['classes'] == ('airplane', 'night_stand') and len(ds) == 3
    infos = [ds.get_data_info(i) for i in range(3)]
    assert [(d['sample_id'], d['gt_label']) for d in infos] == [
        ('airplane_0001', 0), ('airplane_0002', 0), ('night_stand_0001', 1)]
    assert infos[2]['points_path'] == str(tmp_path / 'mn40' / 'night_stand' /
                                          'night_stand_0001.txt')
    out = ds[2]
    np.testing.assert_allclose(out['inputs']['points'].numpy(), clouds['night_stand_0001'][:, :3],
                               atol=1e-6)
    assert out['data_samples'].gt_label.item() == 1
    assert out['data_samples'].metainfo['sample_id'] == 'night_stand_0001'
    test = ModelNet40Dataset(str(tmp_path / 'mn40'), split='test', **FAST)
    assert [d['sample_id'] for d in test] == ['night_stand_0101', 'airplane_0627']
    assert [test.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]


def test_modelnet_base_dataset_features(tmp_path):
    _modelnet_resampled(tmp_path / 'mn40')
    root = str(tmp_path / 'mn40')
    plain = ModelNet40Dataset(root, serialize_data=False)
    packed = ModelNet40Dataset(root, serialize_data=True)
    assert [plain.get_data_info(i) for i in range(3)] == [packed.get_data_info(i) for i in range(3)]
    subset = ModelNet40Dataset(root, indices=[2, 0], **FAST)
    assert [subset.get_data_info(i)['sample_id'] for i in range(2)] == ['night_stand_0001',
                                                                       'airplane_0001']
    lazy = ModelNet40Dataset(root, lazy_init=True, **FAST)
    assert lazy.metainfo['classes'] == ('airplane', 'night_stand')  # known before full_init
    assert len(lazy) == 3  # full_init on demand


def test_modelnet_class_selection(tmp_path):
    _modelnet_resampled(tmp_path / 'mn40')
    ds = ModelNet40Dataset(str(tmp_path / 'mn40'), metainfo=dict(classes=['night_stand']),
                           **FAST)
    assert ds.metainfo['classes'] == ('night_stand', ) and len(ds) == 1
    assert ds.get_data_info(0)['gt_label'] == 0
    reordered = ModelNet40Dataset(str(tmp_path / 'mn40'),
                                  metainfo=dict(classes=['night_stand', 'airplane']), **FAST)
    assert [reordered.get_data_info(i)['gt_label'] for i in range(3)] == [1, 1, 0]
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['chair'\]"):
        ModelNet40Dataset(str(tmp_path / 'mn40'), metainfo=dict(classes=['airplane', 'chair']))
    with pytest.raises(ValueError, match='more than once'):
        ModelNet40Dataset(str(tmp_path / 'mn40'), metainfo=dict(classes=['airplane'] * 2))


def test_modelnet_resampled_errors(tmp_path):
    root = tmp_path / 'mn40'
    _modelnet_resampled(root)
    with pytest.raises(FileNotFoundError, match='data_root not found: .*nowhere'):
        ModelNet40Dataset(str(tmp_path / 'nowhere'))
    with pytest.raises(ValueError, match='split must be one of'):
        ModelNet40Dataset(str(root), split='validation')
    with pytest.raises(ValueError, match='layout must be one of'):
        ModelNet40Dataset(str(root), layout='h5')
    with pytest.raises(FileNotFoundError, match='split file not found: .*modelnet40_val.txt'):
        ModelNet40Dataset(str(root), split='val')
    os.remove(root / 'night_stand' / 'night_stand_0101.txt')
    with pytest.raises(FileNotFoundError, match=r"'night_stand_0101' \(.*modelnet40_test.txt line "
                       r'1\) not found: .*night_stand_0101.txt'):
        ModelNet40Dataset(str(root), split='test')
    (root / 'modelnet40_test.txt').write_text('airplane_0001\nsofa_0001\n')
    with pytest.raises(ValueError, match=r"line 2: class 'sofa' of 'sofa_0001' is not in "
                       '.*modelnet40_shape_names.txt'):
        ModelNet40Dataset(str(root), split='test')
    (root / 'modelnet40_test.txt').write_text('airplane\n')
    with pytest.raises(ValueError, match="line 1: sample id 'airplane' does not end in _NNNN"):
        ModelNet40Dataset(str(root), split='test')
    (root / 'modelnet40_test.txt').write_text('\n')
    with pytest.raises(ValueError, match='modelnet40_test.txt is empty'):
        ModelNet40Dataset(str(root), split='test')
    os.remove(root / 'modelnet40_shape_names.txt')
    with pytest.raises(FileNotFoundError, match='class names file not found: .*shape_names.txt'):
        ModelNet40Dataset(str(root))


def test_modelnet_class_names_with_spaces(tmp_path):
    """Datasets written in this layout may name classes with spaces; folders and ids
    spell them with underscores."""
    root = tmp_path / 'synth'
    (root / 'tall_cone').mkdir(parents=True)
    (root / 'shape_names.txt').write_text('tall cone\n')
    (root / 'val.txt').write_text('tall_cone_0007\n')
    np.savetxt(root / 'tall_cone' / 'tall_cone_0007.txt', np.ones((4, 6)), delimiter=',')
    ds = ModelNet40Dataset(str(root), split='val', names_file='shape_names.txt',
                           split_file='{split}.txt', **FAST)
    assert ds.metainfo['classes'] == ('tall cone', ) and ds.get_data_info(0)['gt_label'] == 0


# -- ModelNet40, original mesh layout ---------------------------------------------------------
CUBE = ('OFF\n8 6 0\n-1 -1 -1\n1 -1 -1\n1 1 -1\n-1 1 -1\n-1 -1 1\n1 -1 1\n1 1 1\n-1 1 1\n'
        '4 0 3 2 1\n4 4 5 6 7\n4 0 1 5 4\n4 2 3 7 6\n4 1 2 6 5\n4 0 4 7 3\n')
TETRA = 'OFF4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n'


def _modelnet_meshes(root):
    for cls, split, name, text in [('box', 'train', 'box_0001', CUBE),
                                   ('box', 'test', 'box_0101', CUBE),
                                   ('tetra', 'train', 'tetra_0001', TETRA),
                                   ('tetra', 'train', 'tetra_0002', TETRA),
                                   ('tetra', 'test', 'tetra_0101', TETRA)]:
        (root / cls / split).mkdir(parents=True, exist_ok=True)
        (root / cls / split / f'{name}.off').write_text(text)
    (root / 'box' / 'train' / 'notes.txt').write_text('not a mesh')


def test_modelnet_mesh_layout(tmp_path):
    root = tmp_path / 'ModelNet40'
    _modelnet_meshes(root)
    pipeline = [dict(type='LoadPointsFromFile', mesh_samples=256), dict(type='PackFusionInputs')]
    ds = ModelNet40Dataset(str(root), split='train', layout='mesh', pipeline=pipeline, **FAST)
    assert ds.metainfo['classes'] == ('box', 'tetra')  # sorted folders
    assert [(d['sample_id'], d['gt_label']) for d in
            (ds.get_data_info(i) for i in range(len(ds)))] == [
        ('box_0001', 0), ('tetra_0001', 1), ('tetra_0002', 1)]
    points = ds[0]['inputs']['points']
    assert points.shape == (256, 3) and torch.allclose(points.abs().max(1).values,
                                                       torch.ones(256))
    tetra = ds[1]['inputs']['points']
    assert (tetra >= -1e-6).all() and (tetra.sum(1) <= 1 + 1e-5).all()
    # A class list file fixes the label order.
    (root / 'modelnet40_shape_names.txt').write_text('tetra\nbox\n')
    test = ModelNet40Dataset(str(root), split='test', layout='mesh', **FAST)
    assert test.metainfo['classes'] == ('tetra', 'box')
    assert [(test.get_data_info(i)['sample_id'], test.get_data_info(i)['gt_label'])
            for i in range(2)] == [('tetra_0101', 0), ('box_0101', 1)]
    only_box = ModelNet40Dataset(str(root), split='train', layout='mesh',
                                 metainfo=dict(classes=['box']), **FAST)
    assert len(only_box) == 1 and only_box.get_data_info(0)['gt_label'] == 0


def test_modelnet_mesh_layout_errors(tmp_path):
    root = tmp_path / 'ModelNet40'
    _modelnet_meshes(root)
    (root / 'modelnet40_shape_names.txt').write_text('box\ntetra\ncone\n')
    with pytest.raises(FileNotFoundError, match=r"class 'cone', split 'train' not found: "
                       '.*cone/train'):
        ModelNet40Dataset(str(root), layout='mesh')
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['sphere'\]"):
        ModelNet40Dataset(str(root), layout='mesh', metainfo=dict(classes=['sphere']))
    os.remove(root / 'modelnet40_shape_names.txt')
    with pytest.raises(FileNotFoundError, match="class 'box', split 'val' not found"):
        ModelNet40Dataset(str(root), split='val', layout='mesh')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no class folders in .*empty'):
        ModelNet40Dataset(str(tmp_path / 'empty'), layout='mesh')


# -- ScanObjectNN ------------------------------------------------------------------------------
def _write_h5(path, data, label, **extra):
    h5py = pytest.importorskip('h5py')
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w') as f:
        if data is not None:
            f.create_dataset('data', data=data)
        if label is not None:
            f.create_dataset('label', data=label)
        for key, value in extra.items():
            f.create_dataset(key, data=value)


SCAN_DATA = RNG.uniform(-1, 1, (6, 64, 3)).astype(np.float32)
SCAN_LABELS = np.array([0, 14, 3, 3, 9, 0], dtype=np.int64)


def test_scanobjectnn_variants_and_packing(tmp_path):
    root = tmp_path / 'h5_files'
    _write_h5(root / 'main_split' / 'training_objectdataset_augmentedrot_scale75.h5', SCAN_DATA,
              SCAN_LABELS, mask=np.zeros((6, 64), np.int64))
    _write_h5(root / 'main_split' / 'test_objectdataset_augmentedrot_scale75.h5', SCAN_DATA[:2],
              SCAN_LABELS[:2])
    _write_h5(root / 'main_split_nobg' / 'training_objectdataset.h5', SCAN_DATA[:3],
              SCAN_LABELS[:3, None].astype(np.uint8))  # (N, 1) labels occur as well
    _write_h5(root / 'main_split' / 'training_objectdataset.h5', SCAN_DATA[:4], SCAN_LABELS[:4])
    ds = DATASETS.build(dict(type='ScanObjectNNDataset', data_root=str(root), split='train',
                             pipeline=[dict(type='PackFusionInputs')]))
    assert ds.metainfo['classes'] == SCANOBJECTNN_CLASSES and len(SCANOBJECTNN_CLASSES) == 15
    assert ds.metainfo['classes'][:3] == ('bag', 'bin', 'box') and len(ds) == 6
    info = ds.get_data_info(1)
    assert info['gt_label'] == 14 and info['sample_id'] == 'hardest_train_00001'
    assert info['num_points'] == 64 and info['points'].dtype == np.float32
    np.testing.assert_array_equal(info['points'], SCAN_DATA[1])
    out = ds[1]  # no loader in the pipeline: the points come with the data info
    assert isinstance(out['inputs']['points'], torch.Tensor)
    np.testing.assert_array_equal(out['inputs']['points'].numpy(), SCAN_DATA[1])
    assert out['data_samples'].gt_label.item() == 14
    assert out['data_samples'].metainfo['sample_id'] == 'hardest_train_00001'
    # Each data info is a copy: changing one in place leaves the dataset as it was.
    for serialize in (True, False):
        ds = ScanObjectNNDataset(str(root), serialize_data=serialize)
        ds.get_data_info(0)['points'][:] = 0
        np.testing.assert_array_equal(ds.get_data_info(0)['points'], SCAN_DATA[0])
    assert len(ScanObjectNNDataset(str(root), split='test', **FAST)) == 2
    only = ScanObjectNNDataset(str(root), variant='objectonly', **FAST)
    assert [only.get_data_info(i)['gt_label'] for i in range(3)] == [0, 14, 3]
    assert only.get_data_info(2)['sample_id'] == 'objectonly_train_00002'
    assert len(ScanObjectNNDataset(str(root), variant='objectbg', **FAST)) == 4
    # Point-MAE points the root at main_split itself.
    assert len(ScanObjectNNDataset(str(root / 'main_split'), split='test', **FAST)) == 2
    picked = ScanObjectNNDataset(str(root), metainfo=dict(classes=['cabinet', 'bag']), **FAST)
    assert picked.metainfo['classes'] == ('cabinet', 'bag')
    assert [picked.get_data_info(i)['gt_label'] for i in range(len(picked))] == [1, 0, 0, 1]


def test_scanobjectnn_errors(tmp_path):
    root = tmp_path / 'h5_files'
    train = root / 'main_split' / 'training_objectdataset_augmentedrot_scale75.h5'
    with pytest.raises(FileNotFoundError, match='hardest train file not found: tried .*main_split/'
                       'training_objectdataset_augmentedrot_scale75.h5'):
        ScanObjectNNDataset(str(root))
    with pytest.raises(ValueError, match='variant must be one of'):
        ScanObjectNNDataset(str(root), variant='pb_t50_rs')
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['lamp'\]"):
        _write_h5(train, SCAN_DATA, SCAN_LABELS)
        ScanObjectNNDataset(str(root), metainfo=dict(classes=['lamp']))
    cases = [
        (dict(data=SCAN_DATA, label=None), r"lacks key\(s\) \['label'\]"),
        (dict(data=SCAN_DATA[0], label=SCAN_LABELS), r'"data" has shape \(64, 3\)'),
        (dict(data=SCAN_DATA, label=SCAN_LABELS[:5]), r'"label" has shape \(5,\); expected \(6,\)'),
        (dict(data=SCAN_DATA, label=np.array([0, 1, 2, 15, 0, 0])), 'label 15 of sample 3 is '
         r'outside \[0, 15\)'),
        (dict(data=SCAN_DATA, label=SCAN_LABELS + 0.5), 'expected integers'),
        (dict(data=np.zeros((0, 64, 3), np.float32), label=np.zeros(0, np.int64)),
         'holds no samples'),
    ]
    for arrays, match in cases:
        os.remove(train)
        _write_h5(train, **arrays)
        with pytest.raises(ValueError, match=match) as info:
            ScanObjectNNDataset(str(root))
        assert str(train) in str(info.value)
    nan = SCAN_DATA.copy()
    nan[4, 10, 1] = np.nan
    os.remove(train)
    _write_h5(train, nan, SCAN_LABELS)
    with pytest.raises(ValueError, match='NaN/inf values in 1 clouds \\(first: sample 4\\)'):
        ScanObjectNNDataset(str(root))
    train.write_bytes(b'not an hdf5 file')
    with pytest.raises(ValueError, match='cannot read ScanObjectNN file .*training_objectdataset'):
        ScanObjectNNDataset(str(root))


# -- ShapeNet-55 -------------------------------------------------------------------------------
AIRPLANE, CAR, CHAIR = '02691156', '02958343', '03001627'


def _shapenet(root, train=None, test=None):
    train = train or [f'{CHAIR}-aa11.npy', f'{AIRPLANE}-1a04e3eab45ca15dd86060f189eb133.npy',
                      f'{CAR}-bb22.npy', f'{AIRPLANE}-cc33.npy']
    test = test or [f'{CAR}-dd44.npy', f'{AIRPLANE}-ee55.npy']
    (root / 'ShapeNet-55').mkdir(parents=True)
    (root / 'shapenet_pc').mkdir()
    (root / 'ShapeNet-55' / 'train.txt').write_text('\n'.join(train) + '\n')
    (root / 'ShapeNet-55' / 'test.txt').write_text('\n'.join(test) + '\n')
    for name in train + test:
        np.save(root / 'shapenet_pc' / name, RNG.uniform(-1, 1, (128, 3)).astype(np.float32))


def test_shapenet55(tmp_path):
    root = tmp_path / 'ShapeNet55-34'
    _shapenet(root)
    pipeline = [dict(type='LoadPointsFromFile', num_features=3), dict(type='PackFusionInputs')]
    ds = DATASETS.build(dict(type='ShapeNet55Dataset', data_root=str(root), pipeline=pipeline,
                             **FAST))
    assert ds.metainfo['classes'] == ('airplane', 'car', 'chair')
    assert ds.metainfo['synsets'] == (AIRPLANE, CAR, CHAIR)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [d['gt_label'] for d in infos] == [2, 0, 1, 0]  # index in the sorted synsets
    assert infos[1]['sample_id'] == f'{AIRPLANE}-1a04e3eab45ca15dd86060f189eb133'
    assert infos[1]['points_path'] == str(root / 'shapenet_pc' /
                                          f'{AIRPLANE}-1a04e3eab45ca15dd86060f189eb133.npy')
    out = ds[1]
    np.testing.assert_array_equal(out['inputs']['points'].numpy(), np.load(infos[1]['points_path']))
    test = ShapeNet55Dataset(str(root), split='test', synset_names=False, **FAST)
    assert test.metainfo['classes'] == (AIRPLANE, CAR, CHAIR)
    assert [test.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]
    # A class selection may name synsets or names, whichever the classes show.
    for wanted in (['chair', AIRPLANE], [CHAIR, 'airplane']):
        for names in (True, False):
            sub = ShapeNet55Dataset(str(root), metainfo=dict(classes=wanted), synset_names=names,
                                   **FAST)
            assert sub.metainfo['synsets'] == (CHAIR, AIRPLANE)
            assert [sub.get_data_info(i)['gt_label'] for i in range(len(sub))] == [0, 1, 1]


def test_shapenet55_errors(tmp_path):
    root = tmp_path / 'sn'
    _shapenet(root, test=[f'{CAR}-dd44.npy', '04379243-ff66.npy'])
    with pytest.raises(ValueError, match='line 2: synset 04379243 of 04379243-ff66.npy does not '
                       'occur in .*train.txt'):
        ShapeNet55Dataset(str(root), split='test')
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['table'\]"):
        ShapeNet55Dataset(str(root), metainfo=dict(classes=['table']))
    os.remove(root / 'shapenet_pc' / f'{CAR}-bb22.npy')
    with pytest.raises(FileNotFoundError, match=r'02958343-bb22.npy \(.*train.txt line 3\) not '
                       'found: .*shapenet_pc/02958343-bb22.npy'):
        ShapeNet55Dataset(str(root))
    (root / 'ShapeNet-55' / 'train.txt').write_text(f'{CAR}-bb22.npy\n{CAR}/bb22.ply\n')
    with pytest.raises(ValueError, match="train.txt line 2: '02958343/bb22.ply' is not"):
        ShapeNet55Dataset(str(root))
    os.remove(root / 'ShapeNet-55' / 'test.txt')
    (root / 'ShapeNet-55' / 'train.txt').write_text(f'{AIRPLANE}-cc33.npy\n')
    with pytest.raises(FileNotFoundError, match='split file not found: .*ShapeNet-55/test.txt'):
        ShapeNet55Dataset(str(root), split='test')
    with pytest.raises(FileNotFoundError, match='split file not found: .*ShapeNet-34/train.txt'):
        ShapeNet55Dataset(str(root), split_dir='ShapeNet-34')
