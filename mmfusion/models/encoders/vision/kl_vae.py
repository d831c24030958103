import os.path as osp
from typing import Dict, Optional, Tuple

from torch import Tensor

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.registry import MODELS
from mmfusion.utils import load_state_dict_file, load_strict, select_prefix
from mmfusion.utils.dependency import require


def _is_ldm_layout(state_dict: Dict[str, Tensor]) -> bool:
    """Original (CompVis / Stability) keys, e.g. ``encoder.down.0.block.0``."""
    return any(k.startswith('first_stage_model.') or '.down.' in k or '.up.' in k
               or k.startswith(('encoder.mid.', 'decoder.mid.')) for k in state_dict)


@MODELS.register_module()
class DiffusersKLVAE(BaseEncoder):
    """KL-regularised autoencoder (Stable Diffusion's first stage) via diffusers.

    Args:
        config: ``diffusers.AutoencoderKL`` keyword arguments; ignored when
            ``pretrained`` is a diffusers model folder (its config.json wins).
        pretrained: where the weights come from, any of
            - a diffusers model folder (``config.json`` + weights);
            - an original Stable-Diffusion checkpoint, VAE-only or the full
              model (``first_stage_model.*`` keys), ``.ckpt``/``.pt``/``.pth``
              or ``.safetensors``: the LDM key layout is converted offline
              with diffusers' own converter;
            - a diffusers-layout state dict file, or an mmfusion checkpoint
              with ``prefix`` (e.g. ``'vae.vae.'`` for a ``KLAutoencoder``
              trained by mmfusion).
        prefix: keep only keys starting with it (and strip it).
        scale_factor: multiplies latents (0.18215 for SD); ``None`` takes the
            diffusers config's ``scaling_factor``.
        frozen: see :class:`BaseEncoder`.

    ``encode`` returns the scaled posterior mean and standard deviation;
    ``decode`` takes scaled latents.
    """

    def __init__(self,
                 config: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 prefix: Optional[str] = None,
                 scale_factor: Optional[float] = None,
                 frozen: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(frozen=frozen, init_cfg=init_cfg)
        diffusers = require('diffusers', 'DiffusersKLVAE')
        if pretrained is not None and osp.isdir(pretrained):
            self.vae = diffusers.AutoencoderKL.from_pretrained(pretrained, local_files_only=True)
        else:
            self.vae = diffusers.AutoencoderKL(**(config or {}))
            if pretrained is not None:
                self.load_weights(pretrained, prefix)
        self.scale_factor = float(self.vae.config.scaling_factor
                                  if scale_factor is None else scale_factor)
        self._apply_freeze()

    def load_weights(self, path: str, prefix: Optional[str] = None) -> None:
        """Load a single weights file in LDM or diffusers layout (see class doc)."""
        owner = type(self).__name__
        state_dict = select_prefix(load_state_dict_file(path), prefix, path, owner)
        if _is_ldm_layout(state_dict):
            from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
            state_dict = convert_ldm_vae_checkpoint(state_dict, dict(self.vae.config))
        load_strict(self.vae, state_dict, path, owner,
                    hint='check `config` (the AutoencoderKL arguments) and `prefix`')

    def to_latent(self, img: Tensor) -> Tuple[Tensor, Tensor]:
        """Image in [-1, 1] -> scaled posterior (mean, std), each (B, C, h, w)."""
        posterior = self.vae.encode(img).latent_dist
        return posterior.mean * self.scale_factor, posterior.std * self.scale_factor

    def from_latent(self, latent: Tensor) -> Tensor:
        """Scaled latent -> image in (about) [-1, 1]."""
        return self.vae.decode(latent / self.scale_factor).sample

    def forward(self, img: Tensor) -> Tensor:
        return self.to_latent(img)[0]
