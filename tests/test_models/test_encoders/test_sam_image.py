"""SAMImageEncoder against segment_anything's own Sam, in the tiny setting."""
import os.path as osp
from functools import partial

import pytest
import torch
from torch import nn

from mmfusion.models.encoders.vision import SAMImageEncoder
from mmfusion.registry import MODELS

sam_modeling = pytest.importorskip('segment_anything.modeling')

IMG = 256  # 16x16 tokens: windowed blocks (window 14) still pad and partition
TINY = dict(embed_dim=64, depth=4, num_heads=2, global_attn_indexes=[1, 3])


def _upstream_sam(embed_dim, depth, num_heads, global_attn_indexes, img_size=IMG):
    """A Sam assembled as segment_anything.build_sam._build_sam does, at ``img_size``."""
    grid = img_size // 16
    return sam_modeling.Sam(
        image_encoder=sam_modeling.ImageEncoderViT(
            depth=depth, embed_dim=embed_dim, img_size=img_size, mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=num_heads, patch_size=16,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=global_attn_indexes,
            window_size=14, out_chans=256),
        prompt_encoder=sam_modeling.PromptEncoder(
            embed_dim=256, image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size), mask_in_chans=16),
        mask_decoder=sam_modeling.MaskDecoder(
            num_multimask_outputs=3,
            transformer=sam_modeling.TwoWayTransformer(
                depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375]).eval()


@pytest.fixture(scope='module')
def tiny_sam(tmp_path_factory):
    """(upstream Sam with random weights, its state dict saved as an official .pth)."""
    torch.manual_seed(0)
    sam = _upstream_sam(**TINY)
    with torch.no_grad():
        # pos_embed and rel_pos start at zero: perturb everything so they matter.
        for p in sam.image_encoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = str(tmp_path_factory.mktemp('sam') / 'sam_tiny.pth')
    torch.save(sam.state_dict(), path)
    return sam, path


def test_matches_upstream_image_encoder(tiny_sam):
    sam, path = tiny_sam
    enc = SAMImageEncoder('tiny', img_size=IMG, checkpoint=path)
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        out = enc(x)
        ref = sam.image_encoder(x)
        # Reference for the first global block: upstream modules run by hand.
        h = sam.image_encoder.patch_embed(x) + sam.image_encoder.pos_embed
        for blk in sam.image_encoder.blocks[:2]:
            h = blk(h)
        neck_of_last = sam.image_encoder.neck(out['global_feats'][-1])
    assert out['embed'].shape == (2, 256, IMG // 16, IMG // 16)
    assert (out['embed'] - ref).abs().max().item() <= 1e-5
    assert len(out['global_feats']) == 2
    for f in out['global_feats']:
        assert f.shape == (2, 64, IMG // 16, IMG // 16)
    assert torch.allclose(out['global_feats'][0], h.permute(0, 3, 1, 2), atol=1e-6)
    # Block 3 is the last block: the neck applied to it is the embedding.
    assert torch.allclose(neck_of_last, ref, atol=1e-5)
    # Hooks are temporary.
    assert all(not b._forward_hooks for b in enc.image_encoder.blocks)
    assert torch.equal(torch.tensor(SAMImageEncoder.mean), sam.pixel_mean.flatten())
    assert torch.equal(torch.tensor(SAMImageEncoder.std), sam.pixel_std.flatten())


def test_checkpoint_formats_and_freezing(tiny_sam, tmp_path):
    sam, path = tiny_sam
    ref = sam.image_encoder.state_dict()
    bare = str(tmp_path / 'bare.pth')
    torch.save(sam.image_encoder.state_dict(), bare)
    wrapper = SAMImageEncoder('tiny', img_size=IMG, checkpoint=path)
    mmf = str(tmp_path / 'mmfusion.pth')
    torch.save(dict(meta=dict(epoch=1),
                    state_dict={f'backbone.{k}': v for k, v in wrapper.state_dict().items()}), mmf)
    for enc in (SAMImageEncoder('tiny', img_size=IMG, checkpoint=bare),
                MODELS.build(dict(type='SAMImageEncoder', arch=TINY, img_size=IMG,
                                  checkpoint=mmf, prefix='backbone.'))):
        for k, v in enc.image_encoder.state_dict().items():
            assert torch.equal(v, ref[k]), k
    # BaseEncoder's freezing applies.
    assert not any(p.requires_grad for p in wrapper.parameters())
    assert not wrapper.train().training
    with pytest.raises(KeyError, match=r"SAMImageEncoder: no key in .*mmfusion\.pth.*'neck\.'"):
        SAMImageEncoder('tiny', img_size=IMG, checkpoint=mmf, prefix='neck.')


def test_official_vit_b_keys():
    from segment_anything import build_sam_vit_b
    with torch.device('meta'):  # keys and shapes only, no memory or init time
        sam = build_sam_vit_b()
        enc = SAMImageEncoder('vit_b')
    official = {k: v.shape for k, v in sam.state_dict().items() if k.startswith('image_encoder.')}
    ours = {k: v.shape for k, v in enc.state_dict().items()}
    assert ours == official
    assert enc.global_attn_indexes == [2, 5, 8, 11]


def test_wrong_checkpoint_is_named(tiny_sam):
    _, path = tiny_sam
    other = dict(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=[1])
    with pytest.raises(RuntimeError) as err:
        SAMImageEncoder(other, img_size=IMG, checkpoint=path)
    msg = str(err.value)
    assert osp.basename(path) in msg and "embed_dim=64, depth=4" in msg and "arch='tiny'" in msg
    assert 'unexpected keys' in msg and 'shape mismatches' in msg
    with pytest.raises(RuntimeError, match=f'img_size={IMG}'):  # position embedding size
        SAMImageEncoder('tiny', img_size=128, checkpoint=path)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        SAMImageEncoder('tiny', img_size=IMG, checkpoint='missing.pth')


def test_bad_arguments():
    with pytest.raises(ValueError, match='unknown arch'):
        SAMImageEncoder('vit_s')
    with pytest.raises(ValueError, match='global_attn_indexes'):
        SAMImageEncoder(dict(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=[2]))
    enc = SAMImageEncoder('tiny', img_size=64)
    with pytest.raises(ValueError, match=r'\(B, 3, 64, 64\)'):
        enc(torch.randn(1, 3, 128, 128))
