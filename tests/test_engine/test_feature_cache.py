import os

import pytest
import torch
from mmengine.runner import Runner

from mmfusion.models.encoders import FeatureCache, encoder_fingerprint
from mmfusion.models.encoders.feature_cache import split_batch, stack_samples

from tests.test_models.test_encoders.test_freeze_mechanism import ToyImageEncoder, probe_cfg


def test_cache_round_trip_nested(tmp_path):
    outputs = dict(pooled=torch.randn(3, 4), maps=[torch.randn(3, 2, 5, 5), torch.randn(3, 1)])
    cache = FeatureCache(str(tmp_path), 'abc')
    for i, sample in enumerate(split_batch(outputs, 3)):
        cache.put(f'img{i}.png', sample)
    restored = stack_samples([cache.get(f'img{i}.png') for i in (0, 1, 2)], torch.device('cpu'))
    torch.testing.assert_close(restored, outputs, atol=0, rtol=0)
    assert cache.get('unknown.png') is None
    # Written by rename: no temporary file is left behind.
    assert not [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith('.tmp')]


def test_fingerprint_tracks_weights_and_pipeline():
    enc = ToyImageEncoder()
    base = encoder_fingerprint(enc.state_dict(), dict(pipeline=['Resize']))
    assert base == encoder_fingerprint(enc.state_dict(), dict(pipeline=['Resize']))
    assert base != encoder_fingerprint(enc.state_dict(), dict(pipeline=['Resize', 'Flip']))
    with torch.no_grad():
        enc.proj.weight[0, 0] += 1e-3
    assert base != encoder_fingerprint(enc.state_dict(), dict(pipeline=['Resize']))


def _run(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def test_hook_serves_second_epoch_and_invalidates(synthshapes_root, tmp_path):
    cache_dir = str(tmp_path / 'cache')
    cfg = probe_cfg(synthshapes_root, str(tmp_path / 'a'), dict(type='ToyImageEncoder'),
                    max_iters=6)
    cfg.train_dataloader.update(num_workers=2)  # workers load data; the cache is keyed by id
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2, val_interval=10)
    cfg.custom_hooks = [dict(type='FeatureCacheHook', encoders=['encoder'], cache_dir=cache_dir)]
    runner = _run(cfg)
    cache = runner.model.encoder.feature_cache
    num_samples = len(runner.train_dataloader.dataset)
    # Epoch 1 writes every sample, epoch 2 reads them all.
    assert cache.hits == num_samples and len(os.listdir(cache_dir)) == 1

    # The cached features equal a fresh forward.
    sample = runner.train_dataloader.dataset[0]
    data = runner.model.data_preprocessor(dict(inputs={'img': [sample['inputs']['img']]},
                                               data_samples=[sample['data_samples']]))
    ids = [sample['data_samples'].metainfo['sample_id']]
    cached = runner.model.encoder.forward_cached(data['inputs']['img'], ids, keys=['pooled'])
    assert cache.hits == num_samples + 1
    runner.model.encoder.attach_feature_cache(None)
    fresh = runner.model.encoder(data['inputs']['img'])
    torch.testing.assert_close(cached['pooled'], fresh['pooled'], atol=1e-6, rtol=0)

    # New encoder weights: a different fingerprint, an empty cache, new features.
    cfg2 = cfg.copy()
    cfg2.work_dir = str(tmp_path / 'b')
    cfg2.randomness = dict(seed=1)  # the toy encoder initialises differently
    runner2 = _run(cfg2)
    cache2 = runner2.model.encoder.feature_cache
    assert cache2.fingerprint != cache.fingerprint and len(os.listdir(cache_dir)) == 2
    assert cache2.hits == num_samples  # its own epoch 1 filled it, nothing was reused


def test_hook_rejects_random_pipeline_and_trainable_encoder(synthshapes_root, tmp_path):
    cfg = probe_cfg(synthshapes_root, str(tmp_path), dict(type='ToyImageEncoder'))
    cfg.train_dataloader.dataset.pipeline.insert(-1, dict(type='RandomFlip', prob=0.5))
    cfg.custom_hooks = [dict(type='FeatureCacheHook', encoders=['encoder'],
                             cache_dir=str(tmp_path / 'c'))]
    with pytest.raises(ValueError, match='RandomFlip'):
        _run(cfg)
    with pytest.raises(ValueError, match='trainable parameters'):
        ToyImageEncoder(frozen=False).attach_feature_cache(FeatureCache(str(tmp_path), 'x'))
