"""The frozen 2D teacher of I2P-MAE: depth views -> dense features + saliency."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfusion.models.encoders.pointcloud.projection import VIEW_AXES, splat_depth_views
from mmfusion.registry import MODELS


@MODELS.register_module()
class DepthViewTeacher(nn.Module):
    """Renders the clouds' depth views and reads them with a frozen image model.

    The paper's teacher is a CLIP ViT: its 2D targets are the patch tokens
    after the final norm and projection (``ln_post``, ``proj``), and its
    saliency is the last block's attention from the class token to the
    patches (head-averaged). For an open_clip ViT both come from one forward
    pass: a hook keeps the last block's input and the attention weights are
    recomputed from it with the block's own weights.

    Any other image encoder of the registry works too, as long as it returns
    ``maps`` (a list of (B, C, h, w)) from ``forward``: the last map is the
    target and its per-location L2 norm stands in for the saliency (no class
    attention exists there); say so when you use one.

    Args:
        encoder: config of the image encoder (frozen whatever it says).
        image_size: side of each rendered view (the encoder's input size).
        kernel: splat size in pixels.
        mean, std: per-channel normalisation of the views, which are in
            (0, 1) before it (grey levels copied to 3 channels); the
            official code uses ImageNet's (the defaults), not CLIP's.
        views: (column, row, depth) axes per view.
    """

    def __init__(self,
                 encoder: dict,
                 image_size: int = 224,
                 kernel: int = 5,
                 mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225),
                 views: Sequence[Sequence[int]] = VIEW_AXES) -> None:
        super().__init__()
        self.encoder = MODELS.build(encoder)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.image_size = image_size
        self.kernel = kernel
        self.views = tuple(tuple(v) for v in views)
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        visual = getattr(self.encoder, 'visual', None)
        self._vit = visual is not None and hasattr(visual, 'transformer') and hasattr(
            visual, 'class_embedding')

    def train(self, mode: bool = True) -> 'DepthViewTeacher':
        super().train(mode)
        self.encoder.eval()  # frozen: dropout / norm statistics never change
        return self

    @property
    def out_channels(self) -> int:
        """Channels of the 2D targets (``feats``)."""
        if self._vit:
            proj = self.encoder.visual.proj
            return proj.shape[1] if proj is not None else self.encoder.visual.transformer.width
        with torch.no_grad():  # other encoders: ask the last map of one blank view
            blank = self.mean.new_zeros(1, 3, self.image_size, self.image_size)
            return self.encoder(blank)['maps'][-1].shape[1]

    def render(self, points: Tensor, lengths: Optional[Tensor] = None):
        """(B, V, S, S) views in (0, 1) and the (B, V, N, 2) pixel of each point."""
        return splat_depth_views(points, self.image_size, self.kernel, self.views, lengths)

    def to_input(self, views: Tensor) -> Tensor:
        """(B, V, S, S) grey views -> (B*V, 3, S, S) normalised encoder input."""
        x = views.flatten(0, 1)[:, None].expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def forward(self, points: Tensor, lengths: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Returns dict with ``views`` (B, V, S, S), ``pix`` (B, V, N, 2),
        ``feats`` (B, V, C, h, w) 2D targets, ``saliency`` (B, V, h, w) (each
        view's map sums to 1)."""
        views, pix = self.render(points, lengths)
        B, V = views.shape[:2]
        x = self.to_input(views)
        if self._vit:
            feats, saliency = self._vit_features(x)
        else:
            maps = self.encoder(x)['maps'][-1].float()
            feats = maps
            saliency = maps.norm(dim=1).flatten(1).softmax(-1).view_as(maps[:, 0])
        return dict(views=views, pix=pix, feats=feats.unflatten(0, (B, V)),
                    saliency=saliency.unflatten(0, (B, V)))

    def _vit_features(self, x: Tensor):
        visual = self.encoder.visual
        last = visual.transformer.resblocks[-1]
        kept = {}
        handle = last.register_forward_pre_hook(lambda m, args: kept.setdefault('x', args[0]))
        try:
            out = self.encoder(x)
        finally:
            handle.remove()
        if self.encoder.out_indices[-1] not in (-1, len(visual.transformer.resblocks) - 1):
            raise ValueError('DepthViewTeacher needs the encoder to return the last block '
                             '(out_indices ending with -1)')
        maps = out['maps'][-1]  # (BV, width, h, w) after the last block
        BV, width, h, w = maps.shape
        tokens = maps.flatten(2).transpose(1, 2)
        feats = visual.ln_post(tokens)
        if visual.proj is not None:
            feats = feats @ visual.proj
        feats = feats.transpose(1, 2).reshape(BV, -1, h, w).float()
        saliency = self._class_attention(last, kept['x'])[:, -h * w:]
        saliency = saliency / saliency.sum(-1, keepdim=True)  # over patches, the class token left out
        return feats, saliency.reshape(BV, h, w).float()

    @staticmethod
    def _class_attention(block: nn.Module, x: Tensor) -> Tensor:
        """Head-averaged attention of the class token (index 0) over all tokens."""
        attn = block.attn
        y = block.ln_1(x)
        if not attn.batch_first:
            y = y.transpose(0, 1)
        q, k, _ = F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        heads = attn.num_heads
        B, L, C = q.shape
        q = q[:, :1].reshape(B, 1, heads, C // heads).transpose(1, 2)
        k = k.reshape(B, L, heads, C // heads).transpose(1, 2)
        weights = (q @ k.transpose(-1, -2) / (C // heads) ** 0.5).softmax(-1)  # (B, H, 1, L)
        return weights.mean(1)[:, 0]
