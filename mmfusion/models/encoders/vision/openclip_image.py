"""open_clip image tower (ViT, ModifiedResNet, timm trunks) as a frozen encoder."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.models.encoders.openclip_utils import (
    build_tower,
    normalize_indices,
    read_openclip_checkpoint,
    resolve_model_cfg,
    take_in_order,
)
from mmfusion.registry import MODELS
from mmfusion.utils import load_strict


@MODELS.register_module()
class OpenCLIPImageEncoder(BaseEncoder):
    """The image tower of an open_clip model.

    The tower is open_clip's own module stored as ``self.visual``, so this
    wrapper's state-dict keys are exactly open_clip's ``visual.*`` keys.

    Args:
        model_name: a built-in open_clip architecture, e.g. ``'ViT-B-16'``,
            ``'RN50'``, ``'convnext_base_w'`` (built with random weights,
            nothing is downloaded).
        model_cfg: or an open_clip model config
            ``dict(embed_dim=..., vision_cfg=..., text_cfg=...)`` (or an
            ``open_clip_config.json`` dict with ``model_cfg``/``preprocess_cfg``).
        checkpoint: open_clip weights file: a state dict (``.pt``, ``.bin``,
            ``.safetensors``) or a training checkpoint (``{'state_dict': ...}``
            with ``module.`` prefixes). Its ``visual.*`` keys are loaded
            strictly; a file with no ``visual.*`` key is read as a bare
            image-tower state dict.
        prefix: keep only keys starting with this and strip it first, e.g.
            ``'image_encoder.'`` for an mmfusion checkpoint.
        out_indices: ViT blocks whose patch tokens are returned (negative
            counts from the end; default the last), or the stages of a timm
            CNN trunk whose maps are returned (default every stage).
            ModifiedResNet towers always return every stage.
        pretrained_tag: the open_clip pretrained tag the checkpoint comes from,
            for its mean/std (metadata only). Without it, the mean/std all tags
            of ``model_name`` share, else open_clip's default (OpenAI).
        **kwargs: :class:`BaseEncoder` options (frozen, trainable_modules,
            lora, frozen_dtype, init_cfg).

    Attributes:
        mean, std: per-channel normalisation on the 0-255 scale, for the data
            preprocessor (inputs to :meth:`forward` are already normalised).
        embed_dim: width of the joint image-text embedding.
        image_size: ``(H, W)`` the tower was built for.
        arch: ``'vit'``, ``'resnet'`` (ModifiedResNet) or ``'timm'``.
        num_levels: blocks (ViT) or stages (CNN, a ResNet's stem counted)
            that ``out_indices`` index.
    """

    def __init__(self,
                 model_name: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 out_indices: Optional[Sequence[int]] = None,
                 pretrained_tag: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        cfg, preprocess = resolve_model_cfg(name, model_name, model_cfg, pretrained_tag,
                                            tower='visual')
        self.visual = build_tower(cfg, 'visual', name)
        self.embed_dim = int(cfg['embed_dim'])
        self.mean = [float(m) * 255 for m in preprocess['mean']]
        self.std = [float(s) * 255 for s in preprocess['std']]
        size = self.visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)

        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.timm_model import TimmModel
        from open_clip.transformer import VisionTransformer
        if isinstance(self.visual, VisionTransformer):
            self.arch = 'vit'
            num_blocks = self.num_levels = len(self.visual.transformer.resblocks)
            self.out_indices = normalize_indices(out_indices or (-1, ), num_blocks, 'ViT blocks',
                                                 name)
        elif isinstance(self.visual, ModifiedResNet):
            self.arch = 'resnet'
            self.out_indices = [1, 2, 3, 4]  # layer1..layer4 (0 is the stem)
            self.num_levels = 5
        elif isinstance(self.visual, TimmModel):
            self.arch = 'timm'
            trunk = self.visual.trunk
            # Transformer trunks have one reduction for every block: take the
            # requested blocks; hierarchical (CNN) trunks the requested stages (all by default).
            self._timm_plain = len({f['reduction'] for f in trunk.feature_info}) == 1
            num = self.num_levels = len(trunk.feature_info)
            if self._timm_plain:
                self.out_indices = normalize_indices(out_indices or (-1, ), num, 'timm blocks', name)
            elif out_indices is None:
                self.out_indices = list(range(num))
            else:
                self.out_indices = normalize_indices(out_indices, num, 'timm stages', name)
        else:
            raise TypeError(f'{name}: unsupported open_clip image tower '
                            f'{type(self.visual).__name__}')

        if checkpoint is not None:
            self.load_checkpoint(checkpoint, prefix)
        self._apply_freeze()

    # -- weights -----------------------------------------------------------
    def load_checkpoint(self, path: str, prefix: Optional[str] = None) -> None:
        """Load the ``visual.*`` subset of an open_clip checkpoint strictly."""
        from open_clip.model import resize_pos_embed
        name = type(self).__name__
        state_dict = read_openclip_checkpoint(path, prefix, name)
        visual = {k: v for k, v in state_dict.items() if k.startswith('visual.')}
        hint = 'check model_name/model_cfg and prefix'
        if not visual:
            visual = {f'visual.{k}': v for k, v in state_dict.items()}
            hint += ' (it has no visual.* key, so it was read as a bare image-tower state dict)'
        # open_clip's own loader interpolates a ViT grid of another size.
        load_strict(self, visual, path, name, hint, adapt=lambda sd: resize_pos_embed(sd, self))

    # -- forward -----------------------------------------------------------
    def forward(self, img: Tensor) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """Encode normalised images.

        Args:
            img: ``(B, 3, H, W)`` float, normalised with :attr:`mean`/:attr:`std`.

        Returns:
            dict with, for ViT towers (open_clip ViTs and timm transformer
            trunks):

            - ``'pooled'``: ``(B, embed_dim)`` exactly open_clip's
              ``encode_image`` (not L2-normalised);
            - ``'tokens'``: list over ``out_indices`` of ``(B, N, width)``
              patch tokens (no class token) after that block, before the
              final norm;
            - ``'maps'``: the same tokens as ``(B, width, H/p, W/p)``.

            For CNN towers (ModifiedResNet, timm ConvNeXt & co.):

            - ``'maps'``: list of stage outputs ``(B, C_i, H/s_i, W/s_i)``
              (strides 4, 8, 16, 32);
            - ``'dense'``: ``(B, embed_dim, H/32, W/32)`` CLIP embedding of
              every location of the last map, for mask pooling. ModifiedResNet:
              the attention pool's value and output projections per location
              (MaskCLIP; no positional embedding, so any input size works);
              timm trunks with a norm/MLP head (ConvNeXt): the head's norm,
              MLP and CLIP projection per pixel. Absent for other timm heads;
            - ``'pooled'``: ``(B, embed_dim)`` open_clip's ``encode_image``.
              For a ModifiedResNet input of another size than
              :attr:`image_size`, the attention pool's positional embedding is
              resized bicubically.
        """
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f'{type(self).__name__} expects (B, 3, H, W) images, '
                             f'got {tuple(img.shape)}')
        if self.arch == 'vit':
            return self._forward_vit(img)
        if self.arch == 'resnet':
            return self._forward_resnet(img)
        return self._forward_timm(img)

    def _forward_vit(self, img: Tensor) -> Dict[str, Union[Tensor, List[Tensor]]]:
        if tuple(img.shape[-2:]) != self.image_size:
            raise ValueError(f'{type(self).__name__}: this ViT was built for {self.image_size} '
                             f'inputs (fixed positional embedding), got {tuple(img.shape[-2:])}; '
                             'resize the images or set vision_cfg.image_size')
        taken = sorted(set(self.out_indices))
        out = self.visual.forward_intermediates(img, indices=taken, output_fmt='NLC')
        tokens = take_in_order(out['image_intermediates'], taken, self.out_indices)
        ph, pw = self.visual.patch_size
        h, w = img.shape[-2] // ph, img.shape[-1] // pw
        maps = [t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w) for t in tokens]
        return dict(pooled=out['image_features'], tokens=tokens, maps=maps)

    def _forward_resnet(self, img: Tensor) -> Dict[str, Union[Tensor, List[Tensor]]]:
        visual = self.visual
        maps = visual.forward_intermediates(img, indices=self.out_indices,
                                            intermediates_only=True)['image_intermediates']
        side = int(round((visual.attnpool.positional_embedding.shape[0] - 1) ** 0.5))
        if tuple(maps[-1].shape[-2:]) == (side, side):
            pooled = visual.attnpool(maps[-1])  # the module encode_image ends with
        else:
            pooled = self._attnpool_resized(maps[-1])
        pool = visual.attnpool
        x = maps[-1].permute(0, 2, 3, 1)  # per-location linear layers act on channels-last
        dense = pool.c_proj(pool.v_proj(x)).permute(0, 3, 1, 2)
        return dict(pooled=pooled, maps=maps, dense=dense)

    def _attnpool_resized(self, x: Tensor) -> Tensor:
        """ModifiedResNet's attention pool with its positional grid resized to ``x``."""
        pool = self.visual.attnpool
        pos = pool.positional_embedding
        side = int(round((pos.shape[0] - 1) ** 0.5))
        grid = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=x.shape[-2:], mode='bicubic', align_corners=False)
        pos = torch.cat([pos[:1], grid.flatten(2)[0].t()], dim=0)
        seq = x.flatten(2).permute(2, 0, 1)  # (HW, B, C)
        seq = torch.cat([seq.mean(dim=0, keepdim=True), seq], dim=0) + pos[:, None].to(seq.dtype)
        out, _ = F.multi_head_attention_forward(
            query=seq[:1], key=seq, value=seq, embed_dim_to_check=seq.shape[-1],
            num_heads=pool.num_heads, q_proj_weight=pool.q_proj.weight,
            k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
            in_proj_weight=None,
            in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.,
            out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
            use_separate_proj_weight=True, training=self.training, need_weights=False)
        return out[0]

    def _forward_timm(self, img: Tensor) -> Dict[str, Union[Tensor, List[Tensor]]]:
        trunk, head = self.visual.trunk, self.visual.head
        taken = sorted(set(self.out_indices))
        final, inter = trunk.forward_intermediates(img, indices=taken, output_fmt='NCHW')
        maps = take_in_order(inter, taken, self.out_indices)
        out = dict(pooled=head(trunk.forward_head(final)), maps=maps)
        if self._timm_plain:
            out['tokens'] = [m.flatten(2).transpose(1, 2) for m in maps]
        elif self._has_dense_timm_head():
            t_head = trunk.head
            x = t_head.norm(final).permute(0, 2, 3, 1)  # LayerNorm2d is per pixel
            x = t_head.fc(t_head.drop(t_head.pre_logits(x)))
            out['dense'] = head(x).permute(0, 3, 1, 2)
        return out

    def embed_pooled(self, feats: Tensor) -> Tensor:
        """CLIP's head on features pooled from the last map: ``(..., C)`` ->
        ``(..., embed_dim)``.

        This is ``encode_image`` with the tower's own pooling replaced by any
        other (FrozenSeg / FC-CLIP pool the last map over each mask, then
        apply the head): timm trunks with a norm/MLP head run the head's
        norm, MLP and CLIP projection; ModifiedResNet the attention pool's
        value and output projections (MaskCLIP, linear, so pooling before or
        after them is the same); ViTs the final norm and projection on pooled
        patch tokens.
        """
        if self.arch == 'timm':
            if not self._has_dense_timm_head():
                raise TypeError(f'{type(self).__name__}: this timm head pools inside it; it has '
                                'no per-vector form to apply to pooled features')
            t_head = self.visual.trunk.head
            # LayerNorm2d normalises each vector over channels: apply it as (N, C, 1, 1)
            shape = feats.shape
            x = t_head.norm(feats.reshape(-1, shape[-1], 1, 1)).reshape(shape)
            return self.visual.head(t_head.fc(t_head.drop(t_head.pre_logits(x))))
        if self.arch == 'resnet':
            pool = self.visual.attnpool
            return pool.c_proj(pool.v_proj(feats))
        visual = self.visual
        x = visual.ln_post(feats)
        return x @ visual.proj if visual.proj is not None else x

    def _has_dense_timm_head(self) -> bool:
        from timm.layers import NormMlpClassifierHead
        t_head = self.visual.trunk.head
        # Pool -> norm -> MLP heads whose layers are per-vector; attention
        # pools inside open_clip's head mix locations, so they have no dense form.
        return (isinstance(t_head, NormMlpClassifierHead) and not t_head.use_conv
                and 'pool' not in dict(self.visual.head.named_children()))
