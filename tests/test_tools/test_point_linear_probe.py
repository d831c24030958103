"""tools/analysis_tools/point_linear_probe.py on tiny generated ModelNet-style
trees: frozen-encoder features + linear SVM / logistic regression."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.conftest import REPO
from tools.analysis_tools import point_linear_probe as probe

pytestmark = pytest.mark.usefixtures('one_thread')

CLASSES = ['sphere', 'plane', 'line']
NUM_TRAIN, NUM_TEST = 10, 5  # per class
ENCODER = dict(type='I2PMAEEncoder', num_groups=(32, 16, 8), group_sizes=(8, 4, 4),
               embed_dims=(16, 32, 48), depths=(1, 1, 1), num_heads=2, drop_path_rate=0.0)
PREPROCESSOR = dict(type='MultiModalDataPreprocessor',
                    points=dict(type='PointDataPreprocessor', num_points=128))


def _tilt(rng, max_angle=0.2):
    """A rotation by at most ``max_angle`` radians about a random axis."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = rng.uniform(-max_angle, max_angle)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _shape(name, rng, n=200):
    if name == 'sphere':
        p = rng.normal(size=(n, 3))
        p /= np.linalg.norm(p, axis=1, keepdims=True)
    elif name == 'plane':  # a flat square
        p = rng.uniform(-1, 1, size=(n, 3))
        p[:, 2] = rng.normal(scale=0.01, size=n)
    else:  # a thin line
        p = np.zeros((n, 3))
        p[:, 0] = rng.uniform(-1, 1, n)
        p[:, 1:] = rng.normal(scale=0.01, size=(n, 2))
    # aligned, as ModelNet40: random size, position and a small tilt
    p = p @ _tilt(rng).T * rng.uniform(0.5, 2.0) + rng.normal(scale=0.2, size=3)
    return np.concatenate([p, np.zeros_like(p)], axis=1)  # x,y,z,nx,ny,nz


def make_resampled_tree(root):
    """modelnet40_normal_resampled's layout with three classes."""
    rng = np.random.default_rng(0)
    (root / 'modelnet40_shape_names.txt').write_text('\n'.join(CLASSES) + '\n')
    splits = {'train': [], 'test': []}
    for name in CLASSES:
        (root / name).mkdir()
        for i in range(NUM_TRAIN + NUM_TEST):
            sample_id = f'{name}_{i + 1:04d}'
            np.savetxt(root / name / f'{sample_id}.txt', _shape(name, rng), fmt='%.6f',
                       delimiter=',')
            splits['train' if i < NUM_TRAIN else 'test'].append(sample_id)
    for split, ids in splits.items():
        (root / f'modelnet40_{split}.txt').write_text('\n'.join(ids) + '\n')


def _box(sx, sy, sz):
    v = np.array([[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)])
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return v, faces


def make_mesh_tree(root, per_class=6):
    """The libcgal real-mesh layout: <root>/<category>/test/*.off only."""
    rng = np.random.default_rng(1)
    shapes = {
        'cube': lambda: _box(1, 1, 1),
        'rod': lambda: _box(0.1, 0.1, 2),
        'plate': lambda: _box(1.5, 1.5, 0.05),
    }
    for name, make in shapes.items():
        folder = root / name / 'test'
        folder.mkdir(parents=True)
        for i in range(per_class):
            v, faces = make()
            v = v @ _tilt(rng).T * rng.uniform(0.5, 2.0)
            lines = ['OFF', f'{len(v)} {len(faces)} 0']
            lines += [' '.join(f'{c:.6f}' for c in row) for row in v]
            lines += [f'{len(f)} ' + ' '.join(map(str, f)) for f in faces]
            (folder / f'{name}_{i:04d}.off').write_text('\n'.join(lines) + '\n')


def write_config(path, data_root, model, layout='resampled', cv=False):
    test_pipeline = [dict(type='LoadPointsFromFile', use_dims=[0, 1, 2], mesh_samples=256),
                     dict(type='PackFusionInputs')]
    # an augmentation the probe must not run (it is not even registered)
    train_pipeline = [test_pipeline[0], dict(type='NotARegisteredAugmentation'),
                      test_pipeline[1]]
    dataset = dict(type='ModelNet40Dataset', data_root=str(data_root), layout=layout)
    cfg = dict(
        model=model,
        train_dataloader=dict(batch_size=4, num_workers=0,
                              dataset=dict(type='RepeatDataset', times=3,
                                           dataset=dict(dataset, split='train',
                                                        pipeline=train_pipeline))),
        test_dataloader=dict(batch_size=5, num_workers=0,
                             dataset=dict(dataset, split='test', pipeline=test_pipeline)))
    if cv:
        cfg.pop('train_dataloader')
    Config(cfg).dump(str(path))
    return str(path)


@pytest.fixture(scope='module')
def resampled(tmp_path_factory):
    pytest.importorskip('sklearn')
    pytest.importorskip('mmfusion.datasets.pointcloud_datasets')
    root = tmp_path_factory.mktemp('modelnet_resampled')
    make_resampled_tree(root)
    return root


def i2pmae_model():
    return dict(type='I2PMAE', encoder=ENCODER, teacher=None, masking='random',
                decoder_dims=(48, 32), decoder_depths=(1, 1), num_heads=2,
                data_preprocessor=PREPROCESSOR)


def reference_encoder_checkpoint(path, seed=0):
    """An encoder file with torch's default (Kaiming-uniform) init: the
    repository's truncated-normal(0.02) init gives a random encoder features
    with almost no signal, unlike this one."""
    from mmfusion.registry import MODELS
    from mmfusion.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(seed)
    encoder = MODELS.build(ENCODER)
    for m in encoder.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d)):
            m.reset_parameters()
    torch.save(encoder.state_dict(), path)
    return encoder


def test_probe_separates_easy_classes(resampled, tmp_path):
    config = write_config(tmp_path / 'probe_cfg.py', resampled, i2pmae_model())
    out = tmp_path / 'probe.json'
    ckpt = tmp_path / 'encoder.pth'
    reference_encoder_checkpoint(ckpt)
    report = probe.main([config, str(ckpt), '--C', '0.01', '1', '--out', str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    # the train split: its own samples once (RepeatDataset unwrapped), the test pipeline
    assert report['num_train'] == 3 * NUM_TRAIN and report['num_test'] == 3 * NUM_TEST
    assert report['classes'] == CLASSES and report['feature_dim'] == 48
    assert not report['random_init'] and 'I2PMAEEncoder' in report['features']
    assert report['checkpoint'] == str(ckpt)
    results = report['results']
    assert set(results) == {'SVC linear C=0.01', 'SVC linear C=1',
                            'LogisticRegression (standardised)'}
    best = results[report['best']]
    # chance is 33%
    assert best['accuracy'] >= 80, results
    assert results['LogisticRegression (standardised)']['accuracy'] >= 80, results
    assert set(best['per_class']) == set(CLASSES)
    assert 'seen_accuracy' not in best  # no held_out in the metainfo
    printed = probe.table(results, held_out=False) + probe.per_class_table(best)
    assert '| classifier | acc | mean class acc |' in printed and '| sphere |' in printed


def test_held_out_split_is_reported(resampled, tmp_path):
    model = i2pmae_model()
    config = write_config(tmp_path / 'probe_cfg.py', resampled, model)
    cfg = Config.fromfile(config)
    for loader in ('train_dataloader', 'test_dataloader'):
        inner = cfg[loader].dataset
        inner = inner.get('dataset', inner)
        inner.metainfo = dict(classes=CLASSES, held_out=['line'])
    args = probe.parse_args([config, '--random-init', '--C', '1'])
    report = probe.run(cfg, args)
    res = report['results']['SVC linear C=1']
    assert report['held_out'] == ['line']
    assert res['held_out_accuracy'] == res['per_class']['line']
    seen = [res['per_class'][c] for c in ('sphere', 'plane')]
    assert res['seen_accuracy'] == pytest.approx(np.mean(seen))


def test_model_feature_is_the_encoder_feature_of_i2pmae(resampled, tmp_path):
    """I2PMAE's _forward is its unmasked encoder's pooled output, so both
    paths give the same features."""
    cfg = Config(dict(model=i2pmae_model()))
    torch.manual_seed(0)
    points = torch.randn(2, 128, 3)
    inputs = {'points': points, 'points_lengths': torch.tensor([128, 128])}
    torch.manual_seed(1)
    enc, f_enc, what = probe.build_feature_extractor(cfg, feature='encoder')
    torch.manual_seed(1)
    model, f_model, _ = probe.build_feature_extractor(cfg, feature='model')
    assert not enc.training and not model.training
    assert 'I2PMAEEncoder' in what
    model.h_encoder.load_state_dict(enc.state_dict())
    assert torch.allclose(f_enc(inputs), f_model(inputs), atol=1e-6)


def test_checkpoint_loads_into_the_encoder(tmp_path):
    """An mmengine checkpoint of a classifier: the prefix is found."""
    from mmfusion.registry import MODELS
    from mmfusion.utils import register_all_modules
    register_all_modules()
    model = dict(type='PointCloudClassifier', num_classes=3,
                 encoder=dict(ENCODER, norms=False, pool='max+mean', frozen=False),
                 data_preprocessor=PREPROCESSOR)
    torch.manual_seed(5)
    trained = MODELS.build(model)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': trained.state_dict(), 'meta': {}}, ckpt)
    cfg = Config(dict(model=model))
    torch.manual_seed(6)
    enc, features, what = probe.build_feature_extractor(cfg, str(ckpt))
    assert 'prefix encoder.' in what
    for key, value in trained.encoder.state_dict().items():
        assert torch.equal(enc.state_dict()[key], value), key
    inputs = {'points': torch.randn(2, 64, 3)}
    # a classifier's probe feature is its encoder's pooled output (no head)
    assert features(inputs).shape == (2, 48)
    with pytest.raises(ValueError, match='random-init'):
        probe.build_feature_extractor(cfg, str(ckpt), random_init=True)


def test_random_init_drops_weight_files():
    cfg = dict(type='PointCloudClassifier',
               encoder=dict(type='PointMAEEncoder', checkpoint='missing.pth', prefix='x.',
                            init_cfg=dict(type='Pretrained', checkpoint='y.pth')))
    probe.drop_weight_files(cfg)
    assert cfg['encoder']['checkpoint'] is None and cfg['encoder']['prefix'] is None
    assert cfg['encoder']['init_cfg'] is None


def test_cross_validation_on_test_only_meshes(tmp_path):
    pytest.importorskip('sklearn')
    pytest.importorskip('mmfusion.datasets.pointcloud_datasets')
    root = tmp_path / 'cgal_meshes'
    make_mesh_tree(root)
    config = write_config(tmp_path / 'cv_cfg.py', root, i2pmae_model(), layout='mesh', cv=True)
    ckpt = tmp_path / 'encoder.pth'
    reference_encoder_checkpoint(ckpt)
    report = probe.main([config, str(ckpt), '--cv', '3', '--C', '1'])
    assert report['num_train'] is None and report['num_test'] == 18
    assert report['protocol'].startswith('3-fold')
    assert sorted(report['classes']) == ['cube', 'plate', 'rod']
    assert report['results']['SVC linear C=1']['accuracy'] >= 70, report['results']
    assert osp.isfile(osp.join(REPO, 'tools', 'analysis_tools', 'point_linear_probe.py'))


def test_few_shot_probe_averages_seeded_draws():
    rng = np.random.default_rng(0)
    y_train = np.repeat(np.arange(3), 20)
    x_train = np.eye(3)[y_train] * 3 + rng.normal(size=(60, 3))
    y_test = np.repeat(np.arange(3), 10)
    x_test = np.eye(3)[y_test] * 3 + rng.normal(size=(30, 3))
    feats = dict(train=(x_train, y_train), test=(x_test, y_test))
    idx = probe.few_shot_indices(y_train, 2, np.random.default_rng(1))
    assert np.bincount(y_train[idx]).tolist() == [2, 2, 2]
    out = probe.probe(feats, [1.0], ['a', 'b', 'c'], [], shots=2, draws=4, seed=1)
    result = out['SVC linear C=1']
    assert result['draws'] == 4 and 'accuracy_std' in result
    # The reported accuracy is the mean over the same 4 seeded draws.
    draws_rng = np.random.default_rng(1)
    from sklearn.svm import SVC
    accs = []
    for _ in range(4):
        i = probe.few_shot_indices(y_train, 2, draws_rng)
        accs.append((SVC(kernel='linear', C=1.0).fit(x_train[i], y_train[i]).predict(x_test)
                     == y_test).mean() * 100)
    assert result['accuracy'] == pytest.approx(np.mean(accs))
    assert result['accuracy_std'] == pytest.approx(np.std(accs))
