"""The official SEMat (SAM ViT-L) checkpoint layout converts and loads strictly
into the paper-scale SEMat, and the CLI writes what loads."""
import importlib.util
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmfusion.models.semat import SEMat
from mmfusion.models.semat.official import convert_official_semat
from mmfusion.registry import MODELS

from tests.conftest import REPO

KEYS = osp.join(REPO, 'tests', 'data', 'semat_official_keys.json')
PAPER = osp.join(REPO, 'configs', 'semat', 'semat_sam-vit-l_8xb2-60k_coco-matting.py')
BIG = 2**18  # tensors with more elements are left uninitialised (only shapes matter)

pytestmark = pytest.mark.usefixtures('one_thread')


def official_state_dict(big=torch.empty) -> dict:
    """Every key of the official checkpoint with its shape: small tensors
    random, big ones made by ``big(shape)``."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for key, shape in json.load(open(KEYS)).items():
        if key.endswith('num_batches_tracked'):
            out[key] = torch.randint(0, 1000, shape, generator=g)
        elif torch.Size(shape).numel() > BIG:
            out[key] = big(shape)
        else:
            out[key] = torch.randn(shape, generator=g)
    return out


@pytest.fixture(scope='module')
def paper_model():
    """The paper-scale config's SEMat (SAM ViT-L, 1024 input, official LoRA,
    SyncBN matte decoder) at its real size, without the SAM weight file."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = Config.fromfile(PAPER).model
        cfg.sam_checkpoint = None
        return MODELS.build(cfg)
    finally:
        torch.set_num_threads(threads)


def test_paper_config_is_the_official_model(paper_model):
    assert isinstance(paper_model, SEMat) and paper_model.img_size == 1024
    assert paper_model.image_encoder.embed_dim == 1024
    assert paper_model.image_encoder.global_attn_indexes == [5, 11, 17, 23]
    trainable = {}
    for name, p in paper_model.named_parameters():
        if p.requires_grad:
            part = 'lora' if 'lora_' in name else name.split('.')[0]
            trainable[part] = trainable.get(part, 0) + p.numel()
    assert set(trainable) == {'lora', 'condition_layer', 'matting_tokens', 'matte_decoder'}
    # rank 16 on qkv (1024 -> 3072) and attn.proj (1024 -> 1024) of 24 blocks, and
    # on the 16x16 patch-embedding conv (3 -> 1024)
    assert trainable['lora'] == 24 * 16 * (1024 + 3072 + 1024 + 1024) + 16 * (3 * 256 + 1024)
    decoder = paper_model.matte_decoder
    assert [b.res_layer.out_channels for b in decoder.down_blks] == [32, 64, 128, 256]
    assert isinstance(decoder.down_blks[0].basic_layer[0][1], torch.nn.SyncBatchNorm)
    cfg = Config.fromfile(PAPER)
    assert cfg.optim_wrapper.optimizer.lr == 5e-5 and cfg.train_cfg.max_iters == 60000


@pytest.fixture(scope='module')
def converted():
    src = official_state_dict()
    state, report = convert_official_semat({'model': src})
    return src, state, report


def test_every_official_key_is_accounted_for(converted):
    src, state, report = converted
    # the report names exactly the keys the converted state dict holds
    targets = set(report.kept) | {dst for _, dst in report.renamed} | \
        {dst for _, dst, _ in report.transformed}
    assert targets == set(state)
    assert len(report.kept) + len(report.renamed) + len(report.transformed) + \
        len(report.dropped) == len(src) == len(state)
    assert not report.dropped and not report.transformed
    # tensors pass through untouched
    assert all(state[dst] is src[key] for key, dst in report.renamed)
    assert all(state[key] is src[key] for key in report.kept)
    assert report.kept == ['condition_layer.patch_embed.proj.weight',
                           'condition_layer.patch_embed.proj.bias']


def test_converted_loads_strictly_into_the_paper_model(converted, paper_model):
    src, state, _ = converted
    own = paper_model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == \
        {k: tuple(v.shape) for k, v in own.items()}
    result = paper_model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # values land where they belong (small, random tensors)
    enc = 'sam_model.image_encoder.base_model.model.'
    pairs = {
        'image_encoder.image_encoder.blocks.11.attn.qkv.lora_A.default.weight':
            enc + 'blocks.11.attn.qkv.lora_A.default.weight',
        'image_encoder.image_encoder.blocks.23.attn.proj.lora_B.default.weight':
            enc + 'blocks.23.attn.proj.lora_B.default.weight',
        'image_encoder.image_encoder.patch_embed.proj.lora_A.default.weight':
            enc + 'patch_embed.proj.lora_A.default.weight',
        'image_encoder.image_encoder.blocks.5.attn.rel_pos_h': enc + 'blocks.5.attn.rel_pos_h',
        'image_encoder.image_encoder.blocks.7.attn.qkv.base_layer.bias':
            enc + 'blocks.7.attn.qkv.base_layer.bias',
        'image_encoder.image_encoder.neck.3.bias': enc + 'neck.3.bias',
        'prompt_encoder.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix':
            'sam_model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix',
        'prompt_encoder.prompt_encoder.point_embeddings.3.weight':
            'sam_model.prompt_encoder.point_embeddings.3.weight',
        'mask_decoder.mask_decoder.mask_tokens.weight': 'sam_model.mask_decoder.mask_tokens.weight',
        'mask_decoder.mask_decoder.output_hypernetworks_mlps.3.layers.2.weight':
            'sam_model.mask_decoder.output_hypernetworks_mlps.3.layers.2.weight',
        'frozen_mask_decoder.mask_decoder.mask_tokens.weight':
            'sam_model.frozen_mask_decoder.mask_tokens.weight',
        'frozen_mask_decoder.mask_decoder.transformer.layers.1.mlp.lin2.bias':
            'sam_model.frozen_mask_decoder.transformer.layers.1.mlp.lin2.bias',
        'matting_tokens.matting_hf_token.weight': 'sam_model.mask_decoder.matting_hf_token.weight',
        'matting_tokens.matting_hf_mlp.layers.2.weight':
            'sam_model.mask_decoder.matting_hf_mlp.layers.2.weight',
        'matting_tokens.matting_compress_vit_feat.3.weight':
            'sam_model.mask_decoder.matting_compress_vit_feat.3.weight',
        'matting_tokens.matting_embedding_maskfeature.1.bias':
            'sam_model.mask_decoder.matting_embedding_maskfeature.1.bias',
        'condition_layer.patch_embed.proj.bias': 'condition_layer.patch_embed.proj.bias',
        'matte_decoder.big_kernel_process.3.weight': 'matting_decoder.big_kernel_process.3.weight',
        'matte_decoder.vit_feat_proj.2.weight': 'matting_decoder.vit_feat_proj.2.weight',
        'matte_decoder.down_blks.3.basic_layer.2.4.running_var':
            'matting_decoder.down_blks.3.basic_layer.2.4.running_var',
        'matte_decoder.down_blks.1.res_layer.weight':
            'matting_decoder.down_blks.1.res_layer.weight',
        'matte_decoder.mid_layer.1.num_batches_tracked':
            'matting_decoder.mid_layer.1.num_batches_tracked',
        'matte_decoder.up_blks.2.basic_layer.0.0.weight':
            'matting_decoder.up_blks.2.basic_layer.0.0.weight',
        'matte_decoder.up_blks.3.basic_layer.2.3.bias':
            'matting_decoder.up_blks.3.basic_layer.2.3.bias',
        'matte_decoder.matting_head.weight': 'matting_decoder.matting_head.weight',
    }
    own = paper_model.state_dict()
    for mine, theirs in pairs.items():
        assert src[theirs].numel() <= BIG, theirs  # random, so equality means placement
        assert torch.equal(own[mine], src[theirs].to(own[mine].dtype)), mine
    # the matting tokens are not SAM's: SAM's decoder keeps only its own tokens
    assert not any('matting' in k for k in own if k.startswith(('mask_decoder.',
                                                                'frozen_mask_decoder.')))


def test_missing_frozen_decoder_is_sams_decoder(converted, paper_model):
    src = {k: v for k, v in converted[0].items()
           if not k.startswith('sam_model.frozen_mask_decoder.')}
    state, report = convert_official_semat(src)
    assert set(state) == set(paper_model.state_dict())
    copies = [k for k in state if k.startswith('frozen_mask_decoder.')]
    assert len(report.transformed) == len(copies) > 100
    for key in copies:  # big tensors are uninitialised memory (may hold NaN): equal_nan
        assert torch.allclose(state[key], state[key[len('frozen_'):]], rtol=0, atol=0,
                              equal_nan=True), key


def test_cli_writes_a_loadable_checkpoint(tmp_path, capsys, converted, paper_model):
    # big tensors as zero-stride views of one element: a small file, real shapes
    src = official_state_dict(big=lambda shape: torch.zeros(()).expand(shape))
    path = tmp_path / 'official.pth'
    torch.save({'model': src, 'iteration': 59999}, path)
    # the script's main in this process (a subprocess would re-import everything)
    spec = importlib.util.spec_from_file_location(
        'semat_to_mmfusion', osp.join(REPO, 'tools', 'model_converters', 'semat_to_mmfusion.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main([str(path), str(tmp_path / 'mmfusion.pth')])
    out = capsys.readouterr().out
    assert '0 transformed, 0 dropped' in out and f'wrote {len(src)} tensors' in out
    ckpt = torch.load(tmp_path / 'mmfusion.pth', weights_only=True)
    assert set(ckpt['state_dict']) == set(converted[1])
    result = paper_model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    key = 'matting_decoder.up_blks.1.res_layer.weight'
    assert torch.equal(paper_model.matte_decoder.up_blks[1].res_layer.weight, src[key])


def test_unknown_key_is_an_error():
    # e.g. the HQ-SAM variant's HQ token
    with pytest.raises(KeyError, match='match no conversion rule'):
        convert_official_semat({'model': {'sam_model.mask_decoder.hf_token.weight':
                                          torch.zeros(1, 256)}})
