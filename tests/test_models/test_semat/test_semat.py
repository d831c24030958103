"""SEMat: what trains, the frozen SAM it keeps, the matting tokens against
segment_anything's decoder, the losses as assembled, the box checks."""
import copy
import math

import pytest
import torch
from mmengine.structures import PixelData
from torch import nn

from mmfusion.models.common.matting_losses import (
    ghmc_loss,
    gradient_loss,
    known_l1_loss,
    laplacian_loss,
    logit_regularization_loss,
    trimap_to_classes,
    unknown_l1_loss,
)
from mmfusion.models.encoders.vision import split_sam_checkpoint
from mmfusion.models.sam import SAM
from mmfusion.models.semat import MatteDecoder, SEMat
from mmfusion.structures import FusionDataSample

sam_pkg = pytest.importorskip('segment_anything')
pytest.importorskip('peft')

SAM_SIZE = 96
IMG = 64
TINY_MATTE = dict(stem_channels=(4, 8), down_channels=(8, 8, 16, 16), norm='BN')


@pytest.fixture(scope='module')
def sam_file(tmp_path_factory):
    """A tiny SAM with random (non-trivial) weights saved in the official layout."""
    torch.manual_seed(0)
    sam = SAM(arch='tiny', img_size=SAM_SIZE)
    with torch.no_grad():
        for p in sam.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    official = {f'{part}.{k}': v for part, sd in
                split_sam_checkpoint(sam.state_dict()).items() for k, v in sd.items()}
    path = tmp_path_factory.mktemp('sam') / 'sam_tiny.pth'
    torch.save(official, path)
    return str(path)


def make_semat(sam_file, **kwargs) -> SEMat:
    torch.manual_seed(1)
    model = SEMat(arch='tiny', img_size=SAM_SIZE, sam_checkpoint=sam_file,
                  matte_decoder=TINY_MATTE, **kwargs)
    with torch.no_grad():  # peft starts LoRA-B at zero: make LoRA change the output
        for name, p in model.named_parameters():
            if 'lora_B' in name:
                p.normal_(0, 0.05)
    return model


def samples(n: int = 2, box=(8., 10., 50., 56.), hw=(IMG, IMG)):
    out = []
    for i in range(n):
        sample = FusionDataSample(metainfo=dict(img_shape=hw, ori_shape=hw, alpha_box=list(box),
                                                img_path=f'img_{i}.png'))
        alpha = torch.zeros(1, *hw)
        alpha[:, 16:48, 14:44] = 1.0
        alpha[:, 14:16, 14:44] = 0.5
        trimap = torch.zeros(1, *hw, dtype=torch.uint8)
        trimap[:, 12:52, 10:48] = 128
        trimap[:, 20:44, 18:40] = 255
        sample.gt_alpha = PixelData(data=alpha)
        sample.gt_trimap = PixelData(data=trimap)
        out.append(sample)
    return out


def test_only_lora_condition_tokens_and_matte_decoder_train(sam_file):
    model = make_semat(sam_file).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for name in trainable:
        assert ('lora_' in name and name.startswith('image_encoder.')) or name.split('.')[0] in (
            'condition_layer', 'matting_tokens', 'matte_decoder'), name
    assert any('lora_A' in n for n in trainable)
    assert any(n.startswith('condition_layer.') for n in trainable)
    losses = model.loss(dict(img=torch.randn(2, 3, IMG, IMG)), samples())
    assert set(losses) == {'loss_unknown_l1', 'loss_known_l1', 'loss_laplacian',
                           'loss_gradient', 'loss_trimap', 'loss_regularization'}
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if name in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, f'{name} gets no gradient'
        else:
            assert p.grad is None, f'frozen {name} got a gradient'


def test_frozen_sam_and_its_decoder_copy_stay_unchanged(sam_file):
    model = make_semat(sam_file).train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith('frozen_mask_decoder.') for n in frozen)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        optim.zero_grad()
        sum(model.loss(dict(img=torch.randn(2, 3, IMG, IMG)), samples()).values()).backward()
        optim.step()
    for name, value in model.named_parameters():
        if name in frozen:
            assert torch.equal(value, frozen[name]), name
    # the copy holds the very weights the SAM decoder was loaded with
    copy_sd = model.frozen_mask_decoder.state_dict()
    for key, value in model.mask_decoder.state_dict().items():
        assert torch.equal(copy_sd[key], value)


def test_reference_logits_are_the_plain_sam(sam_file):
    """LoRA off and no condition: the reference path is exactly the SAM the
    model started from."""
    model = make_semat(sam_file).eval()
    sam = SAM(arch='tiny', img_size=SAM_SIZE, checkpoint=sam_file).eval()
    sam_img = torch.randn(2, 3, SAM_SIZE, SAM_SIZE)
    boxes = torch.tensor([[5., 6., 60., 70.], [20., 10., 90., 80.]])
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(None, boxes[:, None], None)
        ours = model.reference_logits(sam_img, boxes, sparse, dense)
        embed = sam.image_encoder(sam_img)['embed']
        low, iou = sam.mask_decoder(embed, sam.prompt_encoder.get_dense_pe(),
                                    *sam.prompt_encoder(None, boxes[:, None], None), True)
        best = low[torch.arange(2), iou.argmax(1)][:, None]
        lora_embed = model.encode(sam_img, boxes)['embed']
    torch.testing.assert_close(ours, best, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(lora_embed, embed, atol=1e-4)  # LoRA + condition do act


def test_matting_tokens_join_sams_tokens_as_upstream_decodes_them(sam_file):
    """SAM's logits from the matting-token pass equal upstream
    ``MaskDecoder.predict_masks`` given the matting tokens as extra mask
    tokens (and the matting MLP as their hypernetwork)."""
    model = make_semat(sam_file).eval()
    upstream = copy.deepcopy(model.mask_decoder.mask_decoder)
    tokens = model.matting_tokens
    with torch.no_grad():
        upstream.mask_tokens = nn.Embedding.from_pretrained(
            torch.cat((upstream.mask_tokens.weight, tokens.matting_hf_token.weight)))
        upstream.output_hypernetworks_mlps.extend([tokens.matting_hf_mlp] * tokens.num_tokens)
        upstream.num_mask_tokens += tokens.num_tokens
        embed = torch.randn(1, 64, 12, 12)
        vit = torch.randn(1, 96, 12, 12)
        pe = model.prompt_encoder.get_dense_pe()
        sparse, dense = model.prompt_encoder(None, torch.tensor([[[4., 4., 60., 50.]]]), None)
        expected, expected_iou = upstream.predict_masks(embed, pe, sparse, dense)
        sam_low, iou, matting = tokens(model.mask_decoder.mask_decoder, embed, pe, sparse, dense,
                                       vit, multimask_output=False)
        sam_multi, iou_multi, _ = tokens(model.mask_decoder.mask_decoder, embed, pe, sparse,
                                         dense, vit, multimask_output=True)
    torch.testing.assert_close(sam_low, expected[:, :1], rtol=1e-5, atol=1e-5)
    best = expected_iou[:, 1:4].argmax(1)
    torch.testing.assert_close(sam_multi, expected[:, 1 + best], rtol=1e-5, atol=1e-5)
    assert matting.shape == (1, 3, 48, 48)
    # the matting tokens change SAM's own output (they share its token attention)
    plain, _ = model.mask_decoder(embed, pe, sparse, dense, False)
    assert not torch.allclose(plain, sam_low, atol=1e-4)


def test_loss_is_the_weighted_sum_of_the_matting_losses(sam_file):
    model = make_semat(sam_file, loss_weights=dict(gradient=2.0)).eval()
    img = torch.randn(2, 3, IMG, IMG)
    batch = samples()
    with torch.no_grad():
        losses = model.loss(dict(img=img), batch)
        out = model.run(img, batch, with_reference=True)
    gt = torch.stack([s.gt_alpha.data for s in batch])
    trimap = torch.stack([s.gt_trimap.data for s in batch]).float()
    unknown = (trimap == 128).float()
    expected = dict(
        loss_unknown_l1=unknown_l1_loss(out['alpha'], gt, unknown),
        loss_known_l1=known_l1_loss(out['alpha'], gt, unknown),
        loss_laplacian=laplacian_loss(out['alpha'], gt),
        loss_gradient=2.0 * gradient_loss(out['alpha'], gt, unknown),
        loss_trimap=0.05 * ghmc_loss(out['matting_logits'], trimap_to_classes(trimap)),
        loss_regularization=0.2 * logit_regularization_loss(out['sam_logits'],
                                                            out['reference_logits']))
    for key, value in expected.items():
        torch.testing.assert_close(losses[key], value, msg=key)
    ablated = make_semat(sam_file, loss_weights=dict(trimap=0, regularization=0)).eval()
    assert 'loss_trimap' not in ablated.loss(dict(img=img), batch)


def test_without_lora_the_encoder_is_entirely_frozen(sam_file):
    model = make_semat(sam_file, lora=None)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert not any(n.startswith('image_encoder.') for n in names)
    assert any(n.startswith('condition_layer.') for n in names)


def test_predict_restores_the_original_size_and_sam_mask_output(sam_file):
    model = make_semat(sam_file).eval()
    # a 50 x 40 image resized to 64 x 51 by the pipeline, padded to 64 x 64
    batch = samples(1, box=(5., 4., 30., 45.))
    batch[0].set_metainfo(dict(ori_shape=(50, 40), img_shape=(64, 51),
                               scale_factor=(51 / 40, 64 / 50)))
    with torch.no_grad():
        alpha = model.predict(dict(img=torch.randn(1, 3, IMG, IMG)), copy.deepcopy(batch))
        model.test_cfg['output'] = 'sam_mask'
        mask = model.predict(dict(img=torch.randn(1, 3, IMG, IMG)), batch)
    assert alpha[0].pred_alpha.data.shape == (1, 50, 40)
    values = alpha[0].pred_alpha.data
    assert 0 <= values.min() and values.max() <= 1
    assert set(mask[0].pred_alpha.data.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize('box', [(-1., 0., 20., 20.), (0., 0., 65., 20.), (10., 10., 10., 30.)])
def test_a_box_outside_the_image_names_the_file(sam_file, box):
    model = make_semat(sam_file).eval()
    with pytest.raises(ValueError, match=r'img_0\.png: box prompt .* outside the 64x64 image'):
        model.predict(dict(img=torch.randn(1, 3, IMG, IMG)), samples(1, box=box))


def test_sam_to_input_crops_the_valid_region_and_resizes_it():
    # SAM input 8 x 8 holding a 6 x 4 valid region (scale 2 from a 3 x 2 image)
    maps = torch.zeros(1, 1, 8, 8)
    maps[0, 0, :6, :4] = torch.arange(24.).view(6, 4)
    out = SEMat.sam_to_input(maps, [2.0], [(3, 2)], 1, (4, 4))
    assert out.shape == (1, 1, 4, 4)
    assert torch.equal(out[0, 0, 3], torch.zeros(4)) and torch.equal(out[0, 0, :, 2:],
                                                                     torch.zeros(4, 2))
    expected = torch.nn.functional.interpolate(maps[:, :, :6, :4], size=(3, 2), mode='bilinear',
                                               align_corners=False)
    torch.testing.assert_close(out[:, :, :3, :2], expected)
    same = SEMat.sam_to_input(maps, [1.0], [(8, 8)], 1, (8, 8))
    assert torch.equal(same, maps)


def test_matte_decoder_official_shapes_and_errors():
    decoder = MatteDecoder(vit_channels=64, num_vit_feats=2, norm='BN').eval()
    x = torch.randn(1, 6, 64, 64)
    with torch.no_grad():
        alpha = decoder(x, [torch.randn(1, 64, 4, 4)] * 2)
        resized = decoder(x, [torch.randn(1, 64, 6, 6)] * 2)
    assert alpha.shape == resized.shape == (1, 1, 64, 64)
    assert decoder.big_kernel_process[0].kernel_size == (13, 13)
    assert [b.res_layer.out_channels for b in decoder.down_blks] == [32, 64, 128, 256]
    assert [b.res_layer.out_channels for b in decoder.up_blks] == [128, 64, 32, 16]
    with pytest.raises(ValueError, match='multiples of 16'):
        decoder(torch.randn(1, 6, 40, 40), [torch.randn(1, 64, 4, 4)] * 2)
    with pytest.raises(ValueError, match='expected 2 ViT features'):
        decoder(x, [torch.randn(1, 64, 4, 4)])


def test_official_lora_is_rank_16_on_qkv_and_proj(sam_file):
    model = make_semat(sam_file)
    lora_a = {n: p for n, p in model.named_parameters() if 'lora_A' in n}
    targets = {n.split('.lora_A')[0].rsplit('.', 1)[-1] for n in lora_a}
    assert targets == {'qkv', 'proj'}
    assert all(p.shape[0] == 16 for p in lora_a.values())
    depth = len(model.image_encoder.image_encoder.blocks)
    # qkv and attn.proj per block, and the patch-embedding conv peft matches by name
    assert len(lora_a) == 2 * depth + 1
    lora_layer = next(m for m in model.modules() if hasattr(m, 'scaling'))
    assert math.isclose(lora_layer.scaling['default'], 1.0)  # alpha / r = 16 / 16


def test_train_mode_runs_lora_dropout_and_keeps_the_frozen_layers_in_eval(sam_file):
    model = make_semat(sam_file).train()
    dropouts = [m for n, m in model.image_encoder.named_modules() if n.endswith('lora_dropout')]
    assert dropouts and all(m.training for m in dropouts)
    assert not model.image_encoder.image_encoder.blocks[0].norm1.training
    assert not model.frozen_mask_decoder.training and model.matte_decoder.training
    model.eval()
    assert not any(m.training for m in dropouts)
