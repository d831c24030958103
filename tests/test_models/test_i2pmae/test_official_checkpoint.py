"""Official I2P-MAE and Point-MAE checkpoint layouts convert with the tools
and load strictly into the mmfusion models at the paper's configurations;
the converted fine-tuned classifiers compute the official heads and loss."""
import importlib.util
import json
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from mmfusion.models.i2pmae import I2PMAE, PointCloudClassifier, smooth_cross_entropy
from mmfusion.registry import MODELS

from tests.conftest import REPO

KEYS = osp.join(REPO, 'tests', 'data', 'i2pmae_official_keys.json')
TOOLS = osp.join(REPO, 'tools', 'model_converters')
BIG = 2**18  # tensors with more elements are a zero-stride view of one random value

pytestmark = pytest.mark.usefixtures('one_thread')

# The paper's models (I2P-MAE: cfgs/pre-training/i2p-mae.yaml and the
# fine-tuning configs; Point-MAE: cfgs/finetune_modelnet.yaml).
PRETRAIN = dict(
    type='I2PMAE',
    encoder=dict(type='I2PMAEEncoder', num_groups=(512, 256, 64), group_sizes=(16, 8, 8),
                 embed_dims=(96, 192, 384), depths=(5, 5, 5), num_heads=6, frozen=False),
    teacher=dict(type='DepthViewTeacher',
                 encoder=dict(type='OpenCLIPImageEncoder', model_name='ViT-B-16',
                              out_indices=(-1, )),
                 image_size=224, kernel=5),
    decoder_dims=(384, 192), decoder_depths=(1, 1), num_heads=6)


def i2pmae_classifier(num_classes, pool, group_sizes, radius):
    return dict(type='PointCloudClassifier', num_classes=num_classes,
                label_smoothing=0.2 if num_classes == 40 else 0.0,
                encoder=dict(type='I2PMAEEncoder', num_groups=(512, 256, 64),
                             group_sizes=group_sizes, embed_dims=(96, 192, 384), depths=(5, 5, 5),
                             num_heads=6, local_radius=radius, norms=False, pool=pool,
                             frozen=False))


MODELS_OF = {
    'pretrain': PRETRAIN,
    'finetune_modelnet40': i2pmae_classifier(40, 'max+mean', (48, 24, 24), (0.24, 0.48, 0.96)),
    'finetune_scan': i2pmae_classifier(15, 'mean,max', (32, 16, 16), (0.32, 0.64, 1.28)),
    'pointmae_finetune': dict(type='PointCloudClassifier', num_classes=40,
                              encoder=dict(type='PointMAEEncoder', embed_dims=384, depth=12,
                                           num_heads=6, cls_token=True, pool='cls+max',
                                           frozen=False)),
}
MODELS_OF['pointmae_pretrain'] = MODELS_OF['pointmae_finetune']
CONVERTER = {'pretrain': 'i2pmae', 'finetune_modelnet40': 'i2pmae', 'finetune_scan': 'i2pmae',
             'pointmae_pretrain': 'pointmae', 'pointmae_finetune': 'pointmae'}


def official_keys():
    with open(KEYS) as f:
        return json.load(f)


def is_fp16(key: str) -> bool:
    """What ``clip.load`` on the GPU (``convert_weights``) leaves in fp16:
    conv / linear / attention projections and the two projection matrices."""
    if not key.startswith('clip_model.'):
        return False
    return (key.endswith(('attn.in_proj_weight', 'attn.in_proj_bias', 'visual.conv1.weight',
                          'visual.proj', 'text_projection'))
            or '.attn.out_proj.' in key or '.mlp.c_fc.' in key or '.mlp.c_proj.' in key)


def official_state_dict(layout: str, seed: int = 0) -> dict:
    """Every key of the layout with its official shape and dtype: small
    tensors random, big ones a random value broadcast (real shape, tiny file)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in official_keys()[layout].items():
        dtype = torch.float16 if is_fp16(key) else torch.float32
        if key.endswith('num_batches_tracked'):
            out[key] = torch.randint(0, 1000, shape, generator=g)
        elif key.endswith('running_var'):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif torch.Size(shape).numel() > BIG:
            out[key] = torch.randn((), generator=g).to(dtype).expand(shape)
        else:
            out[key] = torch.randn(shape, generator=g).to(dtype)
    return out


def save_official(path, state: dict, module_prefix: bool) -> None:
    """As the official ``save_checkpoint``: DataParallel adds ``module.``."""
    if module_prefix:
        state = {f'module.{k}': v for k, v in state.items()}
    torch.save({'base_model': state, 'optimizer': {}, 'epoch': 299, 'metrics': {'acc': 0.0},
                'best_metrics': {'acc': 0.0}}, path)


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tools():
    return {n: load_tool(f'{n}_to_mmfusion') for n in ('i2pmae', 'pointmae')}


@pytest.fixture(scope='module')
def models():
    """Each paper model once (the ViT-B/16 teacher is the slow one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        built = {}
        for layout, cfg in MODELS_OF.items():
            key = json.dumps(cfg, sort_keys=True)
            built[layout] = built.get(key) or MODELS.build(cfg)
            built[key] = built[layout]
        return {layout: built[layout] for layout in MODELS_OF}
    finally:
        torch.set_num_threads(threads)


def test_fixture_matches_the_key_maker():
    maker = load_tool('make_i2pmae_official_keys')
    assert maker.official_keys() == official_keys()
    counts = {k: len(v) for k, v in official_keys().items()}
    assert counts == {'pretrain': 597, 'finetune_modelnet40': 249, 'finetune_scan': 249,
                      'pointmae_pretrain': 209, 'pointmae_finetune': 174}
    fp16 = [k for k in official_keys()['pretrain'] if is_fp16(k)]
    assert len(fp16) == 195


def test_paper_models(models):
    pre = models['pretrain']
    assert isinstance(pre, I2PMAE)
    enc = pre.h_encoder
    assert enc.num_groups == [512, 256, 64] and enc.group_sizes == [16, 8, 8]
    assert enc.embed_dims == [96, 192, 384] and enc.encoder_norms is not None
    assert pre.teacher.out_channels == 512 and pre.target_channels == 3 * 512
    assert pre.rec_head_2d.out_channels == 512 * 8 * 3
    mn, scan = models['finetune_modelnet40'], models['finetune_scan']
    assert mn.norm is not None and mn.in_channels == 384 and scan.in_channels == 768
    assert models['pointmae_finetune'].norm is None
    assert models['pointmae_finetune'].in_channels == 768


def _check_loaded(model, state, src, rename):
    own = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == \
        {k: tuple(v.shape) for k, v in own.items()}
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    own = model.state_dict()
    for key, value in src.items():
        mine = rename(key)
        if mine is None:
            continue
        assert own[mine].dtype == (torch.long if key.endswith('num_batches_tracked')
                                   else torch.float32), mine
        assert torch.equal(own[mine], value.to(own[mine].dtype)), mine


RENAMES = {
    'pretrain': lambda k: ('teacher.encoder.' + k[len('clip_model.'):]
                           if k.startswith('clip_model.visual.') else
                           None if k.startswith('clip_model.') else k),
    'finetune_modelnet40': lambda k: 'encoder.' + k[len('h_encoder.'):]
    if k.startswith('h_encoder.') else k,
    'pointmae_pretrain': lambda k: 'encoder.' + k[len('MAE_encoder.'):]
    if k.startswith('MAE_encoder.') else None,
    'pointmae_finetune': lambda k: k if k.startswith('cls_head_finetune.') else 'encoder.' + k,
}
RENAMES['finetune_scan'] = RENAMES['finetune_modelnet40']


@pytest.mark.parametrize('module_prefix', [False, True], ids=['single', 'dataparallel'])
@pytest.mark.parametrize('layout', ['pretrain', 'finetune_modelnet40', 'finetune_scan',
                                    'pointmae_finetune'])
def test_official_file_converts_and_loads_strictly(layout, module_prefix, models, tools,
                                                   tmp_path, capsys):
    src = official_state_dict(layout, seed=int(module_prefix))
    path = tmp_path / 'ckpt-last.pth'
    save_official(path, src, module_prefix)
    tools[CONVERTER[layout]].main([str(path), str(tmp_path / 'mmfusion.pth')])
    out = capsys.readouterr().out
    ckpt = torch.load(tmp_path / 'mmfusion.pth', weights_only=True)
    assert ckpt['meta']['converted_from'] == 'ckpt-last.pth'
    state = ckpt['state_dict']
    _check_loaded(models[layout], state, src, RENAMES[layout])
    if layout == 'pretrain':
        # the CLIP text tower: 12 blocks x 12 tensors + 7 others, dropped; fp16 cast
        assert '150 dropped' in out and '98 transformed' in out, out
        assert not any(k.startswith('clip_model') for k in state)
    else:
        assert '0 transformed, 0 dropped' in out, out
    assert f'wrote {len(models[layout].state_dict())} tensors' in out


def test_pointmae_pretraining_file_fills_the_encoder(models, tools, tmp_path, capsys):
    """Point-MAE pre-training weights: the encoder's (cls token and head stay
    at their init, as in the official fine-tuning)."""
    src = official_state_dict('pointmae_pretrain')
    path = tmp_path / 'pretrain.pth'
    save_official(path, src, module_prefix=True)
    tools['pointmae'].main([str(path), str(tmp_path / 'mmfusion.pth')])
    out = capsys.readouterr().out
    assert '156 renamed, 0 transformed, 53 dropped' in out, out
    state = torch.load(tmp_path / 'mmfusion.pth', weights_only=True)['state_dict']
    model = models['pointmae_pretrain']
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert set(result.missing_keys) == {'encoder.cls_token', 'encoder.cls_pos'} | {
        k for k in model.state_dict() if k.startswith('cls_head_finetune.')
        and not k.endswith('num_batches_tracked')}  # torch's BN tolerates its absence
    own = model.state_dict()
    for key, value in src.items():
        mine = RENAMES['pointmae_pretrain'](key)
        if mine is not None:
            assert torch.equal(own[mine], value), mine


def test_pointmae_pretraining_file_loads_into_the_pretrainer_as_is(tmp_path):
    """``PointMAEPretrainer`` keeps the official names: the file's
    ``base_model`` (``module.`` stripped) loads strictly without renaming."""
    from mmfusion.utils import load_state_dict_file
    src = official_state_dict('pointmae_pretrain')
    path = tmp_path / 'ckpt-last.pth'
    save_official(path, src, module_prefix=True)
    model = MODELS.build(dict(
        type='PointMAEPretrainer',
        encoder=dict(type='PointMAEEncoder', num_group=64, group_size=32, embed_dims=384,
                     depth=12, num_heads=6, frozen=False),
        decoder_depth=4, decoder_num_heads=6, mask_ratio=0.6))
    _check_loaded(model, load_state_dict_file(str(path)), src, lambda k: k)


def test_pretraining_files_start_a_classifier_through_the_encoder(tmp_path):
    """Official pre-training files feed a fine-tuning classifier's encoder
    directly (I2P-MAE's per-level norms and Point-MAE's decoder are not used
    there; Point-MAE's cls token keeps its init)."""
    src = official_state_dict('pointmae_pretrain')
    path = tmp_path / 'pointmae.pth'
    save_official(path, src, module_prefix=True)
    model = MODELS.build(dict(MODELS_OF['pointmae_finetune'],
                              encoder=dict(MODELS_OF['pointmae_finetune']['encoder'],
                                           checkpoint=str(path))))
    assert torch.equal(model.encoder.blocks.blocks[11].attn.qkv.weight,
                       src['MAE_encoder.blocks.blocks.11.attn.qkv.weight'])
    src = official_state_dict('pretrain')
    path = tmp_path / 'ckpt-epoch-300.pth'
    save_official(path, src, module_prefix=False)
    cfg = i2pmae_classifier(40, 'max+mean', (48, 24, 24), (0.24, 0.48, 0.96))
    cfg['encoder']['checkpoint'] = str(path)
    model = MODELS.build(cfg)
    key = 'token_embed.2.second_conv.3.weight'
    assert torch.equal(model.encoder.state_dict()[key], src['h_encoder.' + key])


def _official_head(model: PointCloudClassifier, tokens, concat: bool):
    """The official ``I2P_MAE_ModelNet40`` / ``_ScanObjectNN`` forward after
    the encoder: norm, [mean, max] concatenated (ScanObjectNN) or summed."""
    x = F.layer_norm(tokens, (tokens.shape[-1], ), model.norm.weight, model.norm.bias)
    feat = torch.cat([x.mean(1), x.max(1)[0]], -1) if concat else x.mean(1) + x.max(1)[0]
    return model.cls_head_finetune(feat)


@pytest.mark.parametrize('layout', ['finetune_modelnet40', 'finetune_scan'])
def test_converted_classifier_computes_the_official_head(layout, models, tools, monkeypatch):
    model = models[layout]
    state, _ = tools['i2pmae'].convert_official_i2pmae(
        {'base_model': official_state_dict(layout, seed=3)})
    model.load_state_dict(state, strict=True)
    model.eval()
    torch.manual_seed(0)
    # the encoder's un-normalised top tokens (norms=False); the encoder itself
    # is the official H_Encoder's business, tested with it
    tokens = torch.randn(2, 64, 384) * 3 + 1
    monkeypatch.setattr(model.encoder, 'forward',
                        lambda points, lengths=None: dict(tokens=tokens, pooled=None))
    inputs = {'points': torch.zeros(2, 1024, 3)}
    with torch.no_grad():
        logits = model(inputs)
        expected = _official_head(model, tokens, concat=layout == 'finetune_scan')
        samples = model.predict(inputs)
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits, expected, atol=1e-5)
    assert [int(s.pred_label) for s in samples] == logits.argmax(1).tolist()
    assert torch.allclose(torch.stack([s.pred_score for s in samples]), logits.softmax(-1))


def test_official_label_smoothing():
    torch.manual_seed(0)
    logits, labels, eps = torch.randn(6, 40), torch.randint(0, 40, (6, )), 0.2
    # the official smooth_loss
    one_hot = torch.zeros_like(logits).scatter(1, labels.view(-1, 1), 1)
    one_hot = one_hot * (1 - eps) + (1 - one_hot) * eps / (40 - 1)
    official = -(one_hot * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    assert torch.allclose(smooth_cross_entropy(logits, labels, eps), official)
    # not torch's label smoothing (eps spread over all classes)
    assert not torch.allclose(F.cross_entropy(logits, labels, label_smoothing=eps), official)
    assert torch.allclose(smooth_cross_entropy(logits, labels, 0.0),
                          F.cross_entropy(logits, labels))


def test_classifier_loss_uses_the_official_smoothing(models):
    from mmfusion.structures import FusionDataSample
    model = models['pointmae_finetune']
    torch.manual_seed(0)
    points = torch.randn(3, 512, 3)
    labels = torch.tensor([0, 5, 39])
    samples = [FusionDataSample(gt_label=c) for c in labels]
    model.eval()  # no dropout: the loss sees the same logits
    model.label_smoothing = 0.2
    try:
        with torch.no_grad():
            logits = model({'points': points})
            losses = model.loss({'points': points}, samples)
    finally:
        model.label_smoothing = 0.0
    assert set(losses) == {'loss_cls', 'acc'}
    assert torch.allclose(losses['loss_cls'], smooth_cross_entropy(logits, labels, 0.2))
    assert float(losses['acc']) == 100 * (logits.argmax(1) == labels).float().mean().item()
    model.train()
    losses = model.loss({'points': points}, samples)
    losses['loss_cls'].backward()
    assert model.cls_head_finetune[0].weight.grad is not None
    model.zero_grad()
    with pytest.raises(KeyError, match='gt_label'):
        model.loss({'points': points}, [FusionDataSample() for _ in range(3)])
    model.eval()


def test_unknown_key_is_an_error(tools):
    with pytest.raises(KeyError, match='match no conversion rule'):
        tools['i2pmae'].convert_official_i2pmae({'base_model': {
            'mask_token': torch.zeros(1, 384), 'h_encoder_old.x': torch.zeros(1)}})
