"""SEMat: box-prompted natural-image matting from a SAM prior."""
import copy
import math
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from torch import Tensor

from mmfusion.models.common import FusionBaseModel
from mmfusion.models.common.matting_losses import (
    ghmc_loss,
    gradient_loss,
    known_l1_loss,
    laplacian_loss,
    logit_regularization_loss,
    trimap_to_classes,
    unknown_l1_loss,
)
from mmfusion.models.encoders.vision import SAM_MODEL_ARCHS, build_sam_parts
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample
from mmfusion.utils.dependency import require

from .matte_decoder import MatteDecoder
from .matting_tokens import MattingTokens

#: The official LoRA: peft, rank 16, alpha 16, dropout 0.1, gaussian init, on
#: every module of the image encoder named ``qkv`` or ``proj`` (the attention
#: projections and, as peft matches by name, the patch-embedding conv).
OFFICIAL_LORA = dict(target_modules=['qkv', 'proj'], r=16, alpha=16, dropout=0.1,
                     init_lora_weights='gaussian')

#: Loss weights: the four matting losses 1 each (official ``MattingCriterion``),
#: trimap loss on the matting logits 0.05, regularisation to the frozen SAM 0.2.
_LOSS_WEIGHTS = dict(unknown_l1=1.0, known_l1=1.0, laplacian=1.0, gradient=1.0, trimap=0.05,
                     regularization=0.2)
_TEST_OUTPUTS = ('alpha', 'sam_mask')



# torch.compile: excluded, rasterises boxes by data-dependent integer slices (Python ints).
@torch.compiler.disable
def _box_masks(boxes: Tensor, like: Tensor) -> Tensor:
    """(B, 1, S, S) masks of ``like``'s size and dtype, 1 inside each box of
    ``boxes`` (B, 4) in its pixels."""
    mask = like.new_zeros((like.shape[0], 1) + like.shape[-2:])
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        mask[i, :, int(y1):int(y2), int(x1):int(x2)] = 1.0  # official: truncated ints
    return mask

@MODELS.register_module()
class SEMat(FusionBaseModel):
    """SEMat (Xia et al., "Towards Natural Image Matting in the Wild via
    Real-Scenario Prior"): a box-prompted SAM turned into a matting model.

    * **Feature-aligned transformer**: SAM's image encoder with LoRA; the box,
      drawn as a binary mask and concatenated with the normalised image,
      goes through a condition patch-embed (``condition_layer``) whose
      tokens are added to the patch tokens before the position embedding;
      the global-attention blocks' outputs are kept.
    * **Matte-aligned decoder**: SAM's prompt encoder and mask decoder
      (frozen) run with :class:`MattingTokens` (trainable); a frozen copy of
      the original decoder (``frozen_mask_decoder``) gives the SAM logits
      the regularisation loss holds the model to.
    * :class:`MatteDecoder`: image + matting logits / ``logit_scale`` ->
      alpha at the input resolution, the ViT features fused at the
      bottleneck.

    Only the LoRA matrices, the condition layer, the matting tokens and the
    matte decoder train.

    Args:
        arch: SAM size (a key of ``SAM_MODEL_ARCHS``: ``'vit_b'``, ``'vit_l'``
            (the paper), ``'vit_h'``, ``'tiny'``).
        img_size: SAM's input side (1024 for the official weights). Images
            whose longer side differs are resized for SAM (longest side,
            padded bottom-right, as ``Sam.preprocess``) while the matte
            decoder works at the input resolution (the official code's
            high-resolution inference path).
        sam_checkpoint: the SAM to start from (an official ``sam_vit_*.pth``
            or an mmfusion SAM checkpoint).
        lora: peft LoRA on the image encoder (:data:`OFFICIAL_LORA`); None
            trains no LoRA (the encoder stays frozen).
        num_matting_tokens: 3 (one logit per trimap class).
        matte_decoder: :class:`MatteDecoder` options; ``vit_channels`` and
            ``num_vit_feats`` follow the encoder.
        logit_scale: the matting logits are divided by it before entering
            the matte decoder (6.5).
        multimask_output: SAM's logits are the best of its three outputs.
        loss_weights: ``unknown_l1``, ``known_l1``, ``laplacian``,
            ``gradient``, ``trimap``, ``regularization``; a 0 weight skips
            that loss (and, for ``regularization``, the reference pass).
        test_cfg: ``output``: ``'alpha'`` (SEMat's matte) or ``'sam_mask'``
            (the frozen SAM's box mask as alpha: the baseline from the same
            weights and inputs).

    Each data sample carries its box prompt as ``alpha_box`` (x1 y1 x2 y2 in
    original-image pixels; ``LoadMattingAnnotations`` sets it to the box
    around the ground-truth alpha, the paper's evaluation protocol) and, for
    training, ``gt_alpha`` and ``gt_trimap``.
    """

    def __init__(self,
                 arch: str = 'vit_l',
                 img_size: int = 1024,
                 sam_checkpoint: Optional[str] = None,
                 lora: Optional[dict] = OFFICIAL_LORA,
                 num_matting_tokens: int = 3,
                 matte_decoder: Optional[dict] = None,
                 logit_scale: float = 6.5,
                 multimask_output: bool = True,
                 loss_weights: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        unknown = set(loss_weights or {}) - set(_LOSS_WEIGHTS)
        if unknown:
            raise KeyError(f'SEMat: unknown loss_weights {sorted(unknown)}; known: '
                           f'{sorted(_LOSS_WEIGHTS)}')
        self.loss_weights = {**_LOSS_WEIGHTS, **(loss_weights or {})}
        self.test_cfg = {'output': 'alpha', **(test_cfg or {})}
        if set(self.test_cfg) != {'output'} or self.test_cfg['output'] not in _TEST_OUTPUTS:
            raise ValueError(f'SEMat: test_cfg takes output in {_TEST_OUTPUTS}, got {test_cfg}')
        self.image_encoder, self.prompt_encoder, self.mask_decoder = build_sam_parts(
            arch, img_size, sam_checkpoint, owner='SEMat',
            image_encoder=dict(frozen=True, lora=dict(lora) if lora else None),
            prompt_encoder=dict(frozen=True), mask_decoder=dict(frozen=True))
        # The untouched decoder the regularisation compares with (official
        # ``frozen_mask_decoder``): a copy, so the frozen SAM stays available
        # whatever the trainable decoder path becomes.
        self.frozen_mask_decoder = copy.deepcopy(self.mask_decoder)
        self.arch, self.img_size = arch, img_size
        self.patch_size = self.image_encoder.patch_size
        vit_dim = self.image_encoder.embed_dim
        patch_embed = require('segment_anything.modeling.image_encoder', 'SEMat',
                              'segment-anything').PatchEmbed
        self.condition_layer = torch.nn.ModuleDict(dict(patch_embed=patch_embed(
            kernel_size=(self.patch_size, ) * 2, stride=(self.patch_size, ) * 2, in_chans=4,
            embed_dim=vit_dim)))
        self.matting_tokens = MattingTokens(SAM_MODEL_ARCHS[arch]['embed_dim'], vit_dim,
                                            num_matting_tokens)
        self.matte_decoder = MatteDecoder(**{
            'vit_channels': vit_dim, 'num_vit_feats': len(self.image_encoder.global_attn_indexes),
            'in_channels': 3 + num_matting_tokens, **(matte_decoder or {})})
        self.logit_scale = logit_scale
        self.multimask_output = multimask_output
        self._condition: Optional[Tensor] = None
        self.image_encoder.image_encoder.patch_embed.register_forward_hook(self._add_condition)

    # -- the image encoder with the box condition -------------------------------
    def _add_condition(self, module, args, out: Tensor) -> Tensor:
        """Add the condition tokens to the patch tokens (before the position
        embedding), when a conditioned pass is running."""
        return out if self._condition is None else out + self._condition

    @contextmanager
    def _reference_sam(self) -> Iterator[None]:
        """The image encoder as SAM had it: LoRA adapters off (no condition is
        set outside :meth:`encode`)."""
        layers = [m for m in self.image_encoder.modules() if hasattr(m, 'enable_adapters')
                  and hasattr(m, 'lora_A')]
        for layer in layers:
            layer.enable_adapters(False)
        try:
            yield
        finally:
            for layer in layers:
                layer.enable_adapters(True)

    def encode(self, sam_img: Tensor, boxes: Tensor) -> Dict[str, List[Tensor]]:
        """SAM image encoder with LoRA and the box condition.

        ``sam_img`` (B, 3, S, S) normalised, ``boxes`` (B, 4) in its pixels.
        """
        mask = _box_masks(boxes, sam_img)
        self._condition = self.condition_layer['patch_embed'](torch.cat((sam_img, mask), 1))
        try:
            return self.image_encoder(sam_img)
        finally:
            self._condition = None

    # -- inputs ------------------------------------------------------------------
    @staticmethod
    def _name(sample: FusionDataSample) -> str:
        return sample.metainfo.get('img_path') or f'sample {sample.metainfo.get("sample_idx")}'

    # torch.compile: excluded, per-sample box metadata (Python floats, paths in messages) would be
    # guarded, a recompile every batch.
    @torch.compiler.disable
    def boxes_of(self, data_samples: Sequence[FusionDataSample]) -> Tensor:
        """The box prompts (B, 4) in input-image pixels (``alpha_box`` scaled
        by the pipeline's ``scale_factor``), checked against the image."""
        boxes = []
        for sample in data_samples:
            name = self._name(sample)
            if 'alpha_box' not in sample.metainfo:
                raise KeyError(f'SEMat needs a box prompt for {name}: metainfo "alpha_box" '
                               '(LoadMattingAnnotations sets it from the alpha)')
            box = torch.as_tensor(sample.metainfo['alpha_box'], dtype=torch.float32).flatten()
            ori_h, ori_w = sample.metainfo.get('ori_shape', sample.metainfo['img_shape'])[:2]
            x1, y1, x2, y2 = box.tolist() if len(box) == 4 else (0, 0, 0, 0)
            if x1 < 0 or y1 < 0 or x2 > ori_w or y2 > ori_h or x2 <= x1 or y2 <= y1:
                raise ValueError(f'{name}: box prompt {box.tolist()} is empty or outside the '
                                 f'{ori_w}x{ori_h} image (x1 y1 x2 y2, pixels)')
            sx, sy = sample.metainfo.get('scale_factor', (1.0, 1.0))[:2]
            boxes.append(box * box.new_tensor([sx, sy, sx, sy]))
        return torch.stack(boxes)

    def to_sam_input(self, img: Tensor, data_samples: Sequence[FusionDataSample]
                     ) -> Tuple[Tensor, List[float], List[Tuple[int, int]]]:
        """Resize each valid image region so its longer side is ``img_size``
        and pad to ``img_size`` square. Returns the batch, each scale and
        each valid (h, w) of the input."""
        valid = [tuple(s.metainfo.get('img_shape', img.shape[-2:])[:2]) for s in data_samples]
        out = img.new_zeros((img.shape[0], 3, self.img_size, self.img_size))
        scales = []
        for i, (h, w) in enumerate(valid):
            scale = self.img_size / max(h, w)
            nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
            region = img[i:i + 1, :, :h, :w]
            if (nh, nw) != (h, w):
                region = F.interpolate(region, size=(nh, nw), mode='bilinear',
                                       align_corners=False)
            out[i, :, :nh, :nw] = region[0]
            scales.append(scale)
        return out, scales, valid

    @staticmethod
    def sam_to_input(maps: Tensor, scales: List[float], valid: List[Tuple[int, int]],
                     cell: float, out_hw: Tuple[int, int], out_cell: int = 1) -> Tensor:
        """Maps over SAM's padded input (one value per ``cell`` SAM pixels) ->
        maps over the padded input image (one value per ``out_cell`` input
        pixels, size ``out_hw``): each image's valid region is cropped,
        resized (bilinear) to its input size and zero-padded."""
        out = maps.new_zeros(maps.shape[:2] + tuple(out_hw))
        for i, ((h, w), scale) in enumerate(zip(valid, scales)):
            sh, sw = math.ceil(h * scale / cell), math.ceil(w * scale / cell)
            oh, ow = math.ceil(h / out_cell), math.ceil(w / out_cell)
            region = maps[i:i + 1, :, :sh, :sw]
            if (sh, sw) != (oh, ow):
                region = F.interpolate(region, size=(oh, ow), mode='bilinear',
                                       align_corners=False)
            out[i, :, :oh, :ow] = region[0]
        return out

    # -- the model ----------------------------------------------------------------
    def reference_logits(self, sam_img: Tensor, boxes: Tensor, sparse: Tensor,
                         dense: Tensor) -> Tensor:
        """The frozen SAM's box-mask logits (B, 1, 4h, 4w): the encoder without
        LoRA or condition, the frozen decoder copy, no gradient."""
        with torch.no_grad(), self._reference_sam():
            embed = self.image_encoder(sam_img)['embed']
            low, iou = self.frozen_mask_decoder(embed, self.prompt_encoder.get_dense_pe(), sparse,
                                                dense, self.multimask_output)
        if self.multimask_output:
            low = low.gather(1, iou.argmax(1)[:, None, None, None].expand(
                -1, -1, low.shape[-2], low.shape[-1]))
        return low

    def run(self, img: Tensor, data_samples: Sequence[FusionDataSample],
            with_reference: bool = False) -> Dict[str, Tensor]:
        """The whole forward.

        Args:
            img: (B, 3, H, W) normalised, H and W multiples of the matte
                decoder's ``size_divisor``.
            with_reference: also compute the frozen SAM's logits.

        Returns:
            dict with ``alpha`` (B, 1, H, W), ``matting_logits`` (B, T, H, W)
            and, on SAM's input (B, 1, S, S), ``sam_logits`` and, with
            ``with_reference``, ``reference_logits``; plus ``scales`` and
            ``valid`` (the resize to SAM's input, the valid input sizes).
        """
        sam_img, scales, valid, sam_boxes, sparse, dense = self._sam_inputs(img, data_samples)
        feats = self.encode(sam_img, sam_boxes)
        divisor = self.matte_decoder.size_divisor
        image_pe = self.prompt_encoder.get_dense_pe()
        sam_low, _, matting_low = self.matting_tokens(
            self.mask_decoder.mask_decoder, feats['embed'], image_pe, sparse, dense,
            feats['global_feats'][0], self.multimask_output)
        size = (self.img_size, self.img_size)
        up = F.interpolate(matting_low, size=size, mode='bilinear', align_corners=False)
        hw = tuple(img.shape[-2:])
        matting_logits = self.sam_to_input(up, scales, valid, 1, hw)
        grid = (hw[0] // divisor, hw[1] // divisor)
        vit_feats = [self.sam_to_input(f, scales, valid, self.patch_size, grid, divisor)
                     for f in feats['global_feats']]
        alpha = self.matte_decoder(torch.cat((img, matting_logits / self.logit_scale), 1),
                                   vit_feats)
        out = dict(alpha=alpha, matting_logits=matting_logits, scales=scales, valid=valid,
                   sam_logits=F.interpolate(sam_low, size=size, mode='bilinear',
                                            align_corners=False))
        if with_reference:
            out['reference_logits'] = F.interpolate(
                self.reference_logits(sam_img, sam_boxes, sparse, dense), size=size,
                mode='bilinear', align_corners=False)
        return out

    def _sam_inputs(self, img: Tensor, data_samples: Sequence[FusionDataSample]) -> tuple:
        """What both the matting path and the frozen SAM start from: SAM's
        input batch, the resize scales, the valid input sizes, the boxes in
        SAM's pixels and their sparse / dense prompt embeddings."""
        divisor = self.matte_decoder.size_divisor
        if img.shape[-1] % divisor or img.shape[-2] % divisor:
            raise ValueError(f'SEMat: inputs must be padded to multiples of {divisor} (data '
                             f'preprocessor pad_size_divisor), got {tuple(img.shape[-2:])}')
        boxes = self.boxes_of(data_samples)
        sam_img, scales, valid = self.to_sam_input(img, data_samples)
        sam_boxes = boxes.to(img.device) * sam_img.new_tensor(scales)[:, None]
        sparse, dense = self.prompt_encoder(points=None, boxes=sam_boxes[:, None], masks=None)
        return sam_img, scales, valid, sam_boxes, sparse, dense

    def _stack_gt(self, data_samples: Sequence[FusionDataSample], key: str,
                  hw: Tuple[int, int]) -> Tensor:
        """(B, 1, H, W) ground truth padded with zeros to the batch size."""
        out = []
        for sample in data_samples:
            if key not in sample:
                raise KeyError(f'SEMat training needs {key} for {self._name(sample)} '
                               '(LoadMattingAnnotations, with a trimap file for gt_trimap)')
            data = sample.get(key).data.float()
            out.append(F.pad(data, (0, hw[1] - data.shape[-1], 0, hw[0] - data.shape[-2])))
        return torch.stack(out)

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        img = inputs['img']
        w = self.loss_weights
        out = self.run(img, data_samples, with_reference=w['regularization'] > 0)
        hw = tuple(img.shape[-2:])
        gt = self._stack_gt(data_samples, 'gt_alpha', hw).to(img.device)
        trimap = self._stack_gt(data_samples, 'gt_trimap', hw).to(img.device)
        unknown = (trimap == 128).float()
        pred = out['alpha']
        losses = dict(
            loss_unknown_l1=w['unknown_l1'] * unknown_l1_loss(pred, gt, unknown),
            loss_known_l1=w['known_l1'] * known_l1_loss(pred, gt, unknown),
            loss_laplacian=w['laplacian'] * laplacian_loss(pred, gt),
            loss_gradient=w['gradient'] * gradient_loss(pred, gt, unknown))
        if w['trimap'] > 0:
            losses['loss_trimap'] = w['trimap'] * ghmc_loss(out['matting_logits'],
                                                           trimap_to_classes(trimap))
        if w['regularization'] > 0:
            losses['loss_regularization'] = w['regularization'] * logit_regularization_loss(
                out['sam_logits'], out['reference_logits'])
        return losses

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                ) -> List[FusionDataSample]:
        """``pred_alpha`` (1, H, W) in [0, 1] at each sample's original size;
        with ``test_cfg.output='sam_mask'`` the frozen SAM's box mask."""
        img = inputs['img']
        samples = self.fill_data_samples(data_samples, len(img))
        sam_mask = self.test_cfg['output'] == 'sam_mask'
        if sam_mask:  # only the frozen SAM runs; logits -> the input image, thresholded last
            sam_img, scales, valid, sam_boxes, sparse, dense = self._sam_inputs(img, samples)
            low = self.reference_logits(sam_img, sam_boxes, sparse, dense)
            up = F.interpolate(low, size=(self.img_size, self.img_size), mode='bilinear',
                               align_corners=False)
            maps = self.sam_to_input(up, scales, valid, 1, tuple(img.shape[-2:]))
        else:
            out = self.run(img, samples)
            maps, valid = out['alpha'], out['valid']
        for i, sample in enumerate(samples):
            h, w = valid[i]
            one = maps[i:i + 1, :, :h, :w]
            ori = tuple(sample.metainfo.get('ori_shape', (h, w))[:2])
            if ori != (h, w):
                one = F.interpolate(one, size=ori, mode='bilinear', align_corners=False)
            sample.pred_alpha = PixelData(data=(one[0] > 0).float() if sam_mask else one[0])
        return samples

    def _forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                 ) -> Tensor:
        """The alpha mattes (B, 1, H, W) at the input resolution. Without data
        samples the box is the whole image."""
        img = inputs['img']
        if data_samples is None:
            h, w = img.shape[-2:]
            data_samples = [FusionDataSample(metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), alpha_box=[0.0, 0.0, float(w), float(h)]))
                for _ in range(len(img))]
        return self.run(img, data_samples)['alpha']
