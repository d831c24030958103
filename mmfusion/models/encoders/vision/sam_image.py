"""Segment Anything's image encoder (a windowed ViT with a conv neck)."""
from functools import partial
from typing import Dict, List, Mapping, Optional, Union

from torch import Tensor, nn

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.registry import MODELS
from mmfusion.utils import load_strict, read_weights, select_prefix
from mmfusion.utils.dependency import require

# Official hyper-parameters (segment_anything/build_sam.py) plus a tiny variant
# of the same architecture for tests and quick experiments. An arch may also
# set ``patch_size``, ``window_size`` and ``out_chans`` (the neck width);
# :data:`ARCH_DEFAULTS` holds the official values.
SAM_ARCHS: Dict[str, dict] = {
    'vit_b': dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    'vit_l': dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    'vit_h': dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
    'tiny': dict(embed_dim=64, depth=4, num_heads=2, global_attn_indexes=(1, 3)),
}
_ARCH_KEYS = {'embed_dim', 'depth', 'num_heads', 'global_attn_indexes'}
ARCH_DEFAULTS = dict(patch_size=16, window_size=14, out_chans=256)
_SAM_PREFIX = 'image_encoder.'


def _checkpoint_summary(state_dict: Mapping[str, Tensor]) -> str:
    """Describe the encoder a state dict was made for, to make mismatches readable."""
    parts = []
    proj = state_dict.get('patch_embed.proj.weight')
    if proj is not None:
        parts.append(f'embed_dim={proj.shape[0]}')
    depths = {int(k.split('.')[1]) for k in state_dict
              if k.startswith('blocks.') and k.split('.')[1].isdigit()}
    if depths:
        parts.append(f'depth={max(depths) + 1}')
    pos = state_dict.get('pos_embed')
    if pos is not None and pos.ndim == 4 and proj is not None:
        parts.append(f'img_size={pos.shape[1] * proj.shape[-1]}')
    guess = [name for name, a in SAM_ARCHS.items()
             if proj is not None and depths and a['embed_dim'] == proj.shape[0]
             and a['depth'] == max(depths) + 1]
    if guess:
        parts.append(f"i.e. arch='{guess[0]}'")
    return ', '.join(parts) or 'no recognisable SAM image-encoder keys'


@MODELS.register_module()
class SAMImageEncoder(BaseEncoder):
    """The image encoder of Segment Anything (``segment_anything``'s
    ``ImageEncoderViT``) as a frozen-able feature extractor.

    Args:
        arch: ``'vit_b'``, ``'vit_l'``, ``'vit_h'`` (official hyper-parameters)
            or ``'tiny'`` (same architecture, embed_dim 64, depth 4, 2 heads,
            global attention in blocks 1 and 3), or a dict with
            ``embed_dim``, ``depth``, ``num_heads`` and ``global_attn_indexes``
            and optionally ``patch_size`` (16), ``window_size`` (14) and
            ``out_chans`` (256, the neck width).
        img_size: input side length; must be a multiple of the patch size.
            The official checkpoints are for 1024 (their position embeddings
            fix it).
        checkpoint: a weights file (or its already loaded state dict), any of
            - the official ``sam_vit_*.pth`` (a full ``Sam`` state dict; only
              its ``image_encoder.*`` keys are used);
            - a bare ``ImageEncoderViT`` state dict;
            - an mmfusion checkpoint together with ``prefix``.
            Loading is strict; a mismatch names the file and what it holds.
        prefix: keep only keys starting with it, and strip it (e.g.
            ``'backbone.'`` for an mmfusion model holding this encoder as
            ``backbone``).
        **kwargs: :class:`BaseEncoder` options (``frozen``,
            ``trainable_modules``, ``lora``, ``frozen_dtype``, ``init_cfg``).

    Inputs are normalised with :attr:`mean`/:attr:`std` (pixel scale 0-255),
    as ``Sam.preprocess`` does.
    """

    #: SAM's pixel normalisation (``Sam.pixel_mean``/``pixel_std``), RGB 0-255.
    mean = (123.675, 116.28, 103.53)
    std = (58.395, 57.12, 57.375)

    def __init__(self,
                 arch: Union[str, dict] = 'vit_b',
                 img_size: int = 1024,
                 checkpoint: Union[str, Mapping[str, Tensor], None] = None,
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        sam_modeling = require('segment_anything.modeling', 'SAMImageEncoder', 'segment-anything')
        self.arch = self._resolve_arch(arch)
        self.patch_size = self.arch['patch_size']
        if img_size % self.patch_size:
            raise ValueError(f'SAMImageEncoder: img_size must be a multiple of the patch size '
                             f'{self.patch_size}, got {img_size}')
        self.img_size = img_size
        self.embed_dim = self.arch['embed_dim']
        self.out_chans = self.arch['out_chans']
        self.global_attn_indexes = sorted(self.arch['global_attn_indexes'])
        # build_sam._build_sam's settings; patch, window and neck width from the arch.
        self.image_encoder = sam_modeling.ImageEncoderViT(
            img_size=img_size,
            patch_size=self.patch_size,
            embed_dim=self.arch['embed_dim'],
            depth=self.arch['depth'],
            num_heads=self.arch['num_heads'],
            mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=self.global_attn_indexes,
            window_size=self.arch['window_size'],
            out_chans=self.out_chans,
        )
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, prefix)
        elif prefix is not None:
            raise ValueError('SAMImageEncoder: prefix is given but checkpoint is None')
        self._apply_freeze()

    @staticmethod
    def _resolve_arch(arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch not in SAM_ARCHS:
                raise ValueError(f'SAMImageEncoder: unknown arch {arch!r}; choose one of '
                                 f'{sorted(SAM_ARCHS)} or pass a dict with {sorted(_ARCH_KEYS)}')
            return {**ARCH_DEFAULTS, **SAM_ARCHS[arch]}
        arch = dict(arch)
        if not _ARCH_KEYS <= set(arch) <= _ARCH_KEYS | set(ARCH_DEFAULTS):
            raise ValueError(f'SAMImageEncoder: an arch dict needs the keys {sorted(_ARCH_KEYS)} '
                             f'and may set {sorted(ARCH_DEFAULTS)}, got {sorted(arch)}')
        arch = {**ARCH_DEFAULTS, **arch}
        bad = [i for i in arch['global_attn_indexes'] if not 0 <= i < arch['depth']]
        if bad:
            raise ValueError(f'SAMImageEncoder: global_attn_indexes {bad} are outside '
                             f'0..{arch["depth"] - 1}')
        return arch

    def load_checkpoint(self, checkpoint: Union[str, Mapping[str, Tensor]],
                        prefix: Optional[str] = None) -> None:
        """Load SAM image-encoder weights strictly (formats: see class doc)."""
        owner = type(self).__name__
        path, state_dict = read_weights(checkpoint)
        state_dict = select_prefix(state_dict, prefix, path, owner)
        # A full Sam (official release) or this wrapper's own state dict.
        if any(k.startswith(_SAM_PREFIX) for k in state_dict):
            state_dict = select_prefix(state_dict, _SAM_PREFIX, path, owner)
        load_strict(self.image_encoder, state_dict, path, owner,
                    hint=f'configured arch={self.arch} with img_size={self.img_size}, but the '
                    f'checkpoint has {_checkpoint_summary(state_dict)}')

    def forward(self, img: Tensor) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """Encode normalised images.

        Args:
            img: (B, 3, img_size, img_size), normalised with :attr:`mean` and
                :attr:`std`.

        Returns:
            dict with
            - ``embed``: the neck output, (B, out_chans, img_size/patch,
              img_size/patch), what SAM's mask decoder consumes;
            - ``global_feats``: one (B, embed_dim, img_size/patch,
              img_size/patch) map per global-attention block (``global_attn_indexes``), in
              block order; the last one is the ViT output before the neck.
        """
        if img.ndim != 4 or tuple(img.shape[1:]) != (3, self.img_size, self.img_size):
            raise ValueError(f'SAMImageEncoder expects (B, 3, {self.img_size}, {self.img_size}) '
                             f'images (img_size is fixed by the position embedding), got '
                             f'{tuple(img.shape)}')
        global_feats: List[Tensor] = []

        def grab(module: nn.Module, args: tuple, out: Tensor) -> None:
            global_feats.append(out.permute(0, 3, 1, 2))  # blocks work channels-last

        # Hooks read the global blocks' outputs during upstream's own forward,
        # so no part of ImageEncoderViT.forward is re-implemented here.
        handles = [self.image_encoder.blocks[i].register_forward_hook(grab)
                   for i in self.global_attn_indexes]
        try:
            embed = self.image_encoder(img)
        finally:
            for handle in handles:
                handle.remove()
        return dict(embed=embed, global_feats=global_feats)
