"""SEMat's matting tokens: extra output tokens run through SAM's (frozen) mask
decoder next to its own IoU and mask tokens."""
from typing import Tuple

import torch
from torch import Tensor, nn

from mmfusion.utils.dependency import require


class MattingTokens(nn.Module):
    """The trainable part of SEMat's mask decoder (official
    ``MaskDecoderHQMatting`` with ``wo_hq=True``, ``mask_matting_res_add=False``;
    parameter names as there).

    ``num_tokens`` matting tokens join SAM's output tokens in the two-way
    transformer. Their outputs go through one shared MLP
    (``matting_hf_mlp``) and are dotted with a matting feature map: SAM's
    upscaled embedding through ``matting_embedding_maskfeature`` plus the
    image embedding (``matting_embedding_encoder``) and the first
    global-attention ViT feature (``matting_compress_vit_feat``), both
    upsampled 4x. SAM's own mask logits come out of the same pass (the
    matting tokens take part in its token self-attention).

    Args:
        transformer_dim: SAM's decoder width.
        vit_dim: the image encoder's ViT width.
        num_tokens: matting tokens (3: one logit per trimap class).
    """

    def __init__(self, transformer_dim: int, vit_dim: int, num_tokens: int = 3) -> None:
        super().__init__()
        common = require('segment_anything.modeling.common', 'MattingTokens', 'segment-anything')
        decoder = require('segment_anything.modeling.mask_decoder', 'MattingTokens',
                          'segment-anything')
        c = transformer_dim
        self.num_tokens = num_tokens
        self.matting_hf_token = nn.Embedding(num_tokens, c)
        self.matting_hf_mlp = decoder.MLP(c, c, c // 8, 3)
        self.matting_compress_vit_feat = nn.Sequential(
            nn.ConvTranspose2d(vit_dim, c, kernel_size=2, stride=2), common.LayerNorm2d(c),
            nn.GELU(), nn.ConvTranspose2d(c, c // 8, kernel_size=2, stride=2))
        self.matting_embedding_encoder = nn.Sequential(
            nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2), common.LayerNorm2d(c // 4),
            nn.GELU(), nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2))
        self.matting_embedding_maskfeature = nn.Sequential(
            nn.Conv2d(c // 8, c // 4, 3, 1, 1), common.LayerNorm2d(c // 4), nn.GELU(),
            nn.Conv2d(c // 4, c // 8, 3, 1, 1))

    def forward(self, sam_decoder: nn.Module, image_embeddings: Tensor, image_pe: Tensor,
                sparse: Tensor, dense: Tensor, vit_feat: Tensor,
                multimask_output: bool = True) -> Tuple[Tensor, Tensor, Tensor]:
        """Decode one box per image with SAM's tokens and the matting tokens.

        Args:
            sam_decoder: ``segment_anything``'s ``MaskDecoder`` (its weights
                are used, not trained here).
            image_embeddings: (N, C, h, w), one per prompt.
            image_pe: (1, C, h, w) dense positional encoding.
            sparse, dense: the prompt encoder's outputs for the N prompts.
            vit_feat: (N, vit_dim, h, w), the first global-attention block's
                output.
            multimask_output: SAM's logits are the best-scored of its three
                multimask outputs (True, as SEMat) or its single-mask output.

        Returns:
            SAM's mask logits (N, 1, 4h, 4w), their predicted IoU (N, 1) and
            the matting logits (N, num_tokens, 4h, 4w).
        """
        n = sparse.shape[0]
        output_tokens = torch.cat((sam_decoder.iou_token.weight, sam_decoder.mask_tokens.weight,
                                   self.matting_hf_token.weight))
        tokens = torch.cat((output_tokens[None].expand(n, -1, -1), sparse), dim=1)
        src = image_embeddings + dense
        b, c, h, w = src.shape
        hs, src = sam_decoder.transformer(src, image_pe.expand(b, -1, -1, -1), tokens)
        num_sam = sam_decoder.num_mask_tokens
        mask_out = hs[:, 1:1 + num_sam + self.num_tokens]
        upscaled = sam_decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        matting_feat = (self.matting_embedding_encoder(image_embeddings)
                        + self.matting_compress_vit_feat(vit_feat))
        upscaled_matting = self.matting_embedding_maskfeature(upscaled) + matting_feat
        hyper_sam = torch.stack([mlp(mask_out[:, i])
                                 for i, mlp in enumerate(sam_decoder.output_hypernetworks_mlps)], 1)
        hyper_matting = self.matting_hf_mlp(mask_out[:, num_sam:])
        uc, uh, uw = upscaled.shape[1:]
        masks_sam = (hyper_sam @ upscaled.flatten(2)).view(b, -1, uh, uw)
        matting = (hyper_matting @ upscaled_matting.flatten(2)).view(b, -1, uh, uw)
        iou = sam_decoder.iou_prediction_head(hs[:, 0])
        if multimask_output:
            iou, best = iou[:, 1:].max(1, keepdim=True)
            masks_sam = masks_sam[:, 1:].gather(
                1, best[:, :, None, None].expand(-1, -1, uh, uw))
        else:
            iou, masks_sam = iou[:, :1], masks_sam[:, :1]
        return masks_sam, iou, matting
