import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from mmfusion.registry import MODELS
from mmfusion.utils import register_all_modules
from mmfusion.utils.config_weights import drop_weight_files

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(REPO, 'tests', 'data')
GMS_TINY = osp.join(REPO, 'configs', 'gms', 'gms_kl-f4-tiny_1xb8-800it_synth-lesion.py')

# A VAE/mapping net small enough for a training step in well under a second.
TINY_VAE = dict(
    in_channels=3, out_channels=3,
    down_block_types=['DownEncoderBlock2D'] * 2, up_block_types=['UpDecoderBlock2D'] * 2,
    block_out_channels=[8, 16], layers_per_block=1, latent_channels=4, norm_num_groups=4,
    sample_size=32)
TINY_MAPPING = dict(base_channels=8, channel_mults=(1, 1, 2, 2), num_groups=4)

register_all_modules()


def shrink_model_cfg(cfg: Config, fitted_units: str):
    """``cfg.model``, shrunk in place where the config allows (checkpoints
    are produced by other runs): the tiny VAE and mapping net, the fitted test
    speech units, SEMat on the tiny SAM, random init instead of missing weight
    files. Configs with none of these come out as ``get_model`` builds them."""
    model_cfg = cfg.model
    if 'vae' in model_cfg:
        model_cfg.vae.update(pretrained=None, config=TINY_VAE)
    if 'mapping_net' in model_cfg:
        model_cfg.mapping_net.update(TINY_MAPPING)
    if (model_cfg.get('unit_tokenizer') or {}).get('checkpoint'):
        if model_cfg.unit_tokenizer.get('type') == 'SSLSpeechUnitTokenizer':
            model_cfg.unit_tokenizer.checkpoint = _ssl_units_standin(model_cfg.unit_tokenizer,
                                                                     fitted_units)
        else:
            model_cfg.unit_tokenizer.checkpoint = fitted_units
    if model_cfg.get('type') == 'SEMat' and model_cfg.get('arch') != 'tiny':
        # the SAM ViT-L SEMat at real size is built in test_semat/test_official_checkpoint
        model_cfg.update(arch='tiny', img_size=96)
    drop_weight_files(model_cfg, only_missing=True)
    return model_cfg


def _ssl_units_standin(tokenizer_cfg, fitted_units: str) -> str:
    """Encoder units (``SSLSpeechUnitTokenizer``) of the config's own encoder,
    fitted on noise next to ``fitted_units`` (once per encoder config)."""
    import hashlib

    from mmfusion.registry import TOKENIZERS
    cfg = dict(tokenizer_cfg, checkpoint=None)
    key = hashlib.sha1(repr(sorted(cfg.items())).encode()).hexdigest()[:12]
    path = osp.join(osp.dirname(fitted_units), f'ssl_units_{key}.pth')
    if not osp.exists(path):
        torch.manual_seed(0)
        tokenizer = TOKENIZERS.build(cfg)
        tokenizer.fit([torch.randn(16000) * torch.linspace(0, 1, 16000) for _ in range(4)])
        tokenizer.save(path)
    return path


def build_shrunk_model(cfg: Config, fitted_units: str) -> torch.nn.Module:
    """The model of :func:`shrink_model_cfg`."""
    return MODELS.build(shrink_model_cfg(cfg, fitted_units))


def build_train_cfg(argv) -> Config:
    """The config ``tools/train.py ARGV`` would run (its ``build_cfg``)."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import train
    finally:
        sys.path.pop(0)
    sys.argv = ['train.py', *argv]
    return train.build_cfg(train.parse_args())


def tiny_gms_cfg(work_dir: str, max_iters: int = 4) -> Config:
    """The real tiny GMS config, shrunk to the test fixture and a tiny width."""
    cfg = Config.fromfile(GMS_TINY)
    cfg.work_dir = work_dir
    cfg.model.vae.update(config=TINY_VAE, pretrained=None, prefix=None)
    cfg.model.mapping_net.update(TINY_MAPPING)
    root = osp.join(DATA, 'medical_seg')
    for split, loader in (('train', 'train_dataloader'), ('val', 'val_dataloader'),
                          ('val', 'test_dataloader')):
        cfg[loader].dataset.update(data_root=root, ann_file=f'splits/{split}.txt')
        cfg[loader].batch_size = 2
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.val_dataloader.dataset.pipeline,
                     cfg.test_dataloader.dataset.pipeline):
        for t in pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (32, 32)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.visualizer.vis_backends = []
    return cfg


def split_invariant_gms_cfg(work_dir: str, batch_size: int, max_iters: int = 4, **extra) -> Config:
    """Tiny GMS whose update does not depend on how a batch is split (over
    ranks or accumulation steps): no random flip, no posterior sampling,
    only per-sample normalisation (GroupNorm) and per-sample-mean losses.
    SGD with momentum, not AdamW: Adam divides by the gradient's magnitude,
    which turns the float noise on parameters whose true gradient is zero
    (attention key biases) into full-size steps of random sign."""
    cfg = tiny_gms_cfg(work_dir, max_iters=max_iters)
    cfg.model.posterior_sample_prob = 0.0
    cfg.optim_wrapper.optimizer = dict(type='SGD', lr=0.05, momentum=0.9)
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_dataloader.dataset.pipeline = [
        t for t in cfg.train_dataloader.dataset.pipeline if t['type'] != 'RandomFlip']
    cfg.train_cfg.val_interval = max_iters + 1  # validation only at the end
    cfg.default_hooks.checkpoint.interval = 2
    cfg.merge_from_dict(extra)
    return cfg


@pytest.fixture
def gms_cfg(tmp_path):
    return tiny_gms_cfg(str(tmp_path / 'work'))


@pytest.fixture(scope='session')
def synthshapes_root(tmp_path_factory) -> str:
    """A small SynthShapes dataset generated once per test session."""
    from tools.dataset_converters.generate_synthshapes import main
    root = str(tmp_path_factory.mktemp('synthshapes'))
    main(['--out', root, '--num-train', '24', '--num-val', '8', '--num-val-novel', '8',
          '--img-size', '64'])
    return root


@pytest.fixture(scope='session')
def fitted_units(tmp_path_factory) -> str:
    """A 64-unit SpeechUnitTokenizer fitted on noise, standing in for the
    fitted file the speech configs name (tools/misc/fit_speech_units.py)."""
    from mmfusion.models.tokenizers import SpeechUnitTokenizer
    torch.manual_seed(0)
    tokenizer = SpeechUnitTokenizer(num_units=64)
    tokenizer.fit([torch.randn(16000) * torch.linspace(0, 1, 16000) for _ in range(4)])
    path = str(tmp_path_factory.mktemp('units') / 'units64.pth')
    tokenizer.save(path)
    return path


@pytest.fixture
def one_thread():
    """Tiny ops run several times faster on one thread of a busy 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SPEECH_GENERATOR = 'tools.dataset_converters.generate_synth_speech'


def pytest_addoption(parser):
    parser.addoption('--run-compile', action='store_true', default=False,
                     help='also run the tests marked `compile` (torch.compile of every '
                     "family's tiny recipe; minutes per family on CPU)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``compile`` skip unless ``--run-compile`` is given.
    Without Debian's espeak-ng (tools/install.sh installs it as root or with
    sudo, and warns otherwise) the tests of modules that synthesise SynthSpeech
    skip with that reason instead of failing."""
    import shutil
    if not config.getoption('--run-compile'):
        skip_compile = pytest.mark.skip(reason='torch.compile test: pass --run-compile')
        for item in items:
            if item.get_closest_marker('compile') is not None:
                item.add_marker(skip_compile)
    if shutil.which('espeak-ng') is not None:
        return
    skip = pytest.mark.skip(reason='espeak-ng is not installed (apt-get install espeak-ng; '
                            'SynthSpeech is synthesised with it)')
    for item in items:
        module = getattr(item, 'module', None)
        if module is not None and any(getattr(v, '__module__', None) == SPEECH_GENERATOR
                                      for v in vars(module).values()):
            item.add_marker(skip)
