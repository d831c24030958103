from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample

from .gms import mask_to_vae_input, pack_seg_predictions, stack_masks, vae_output_to_prob


@MODELS.register_module()
class KLAutoencoder(FusionBaseModel):
    """Trains a KL-VAE on a segmentation dataset's images *and* masks, so GMS
    has a first stage without downloading Stable Diffusion's.

    Loss: L1 reconstruction of images and masks (both in [-1, 1]) plus
    ``kl_weight`` x KL(posterior || N(0, I)). Stable Diffusion adds LPIPS and a
    patch GAN for photographic detail; GMS only needs masks reconstructed
    faithfully, so they are left out.

    ``predict`` reconstructs the *mask* and returns it as ``pred_sem_seg``:
    validating with a segmentation metric measures the ceiling the VAE puts on
    GMS (a perfect mapping network cannot beat the VAE's mask reconstruction).
    """

    def __init__(self,
                 vae: dict,
                 data_preprocessor: Optional[dict] = None,
                 kl_weight: float = 1e-6,
                 threshold: float = 0.5,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.vae = MODELS.build(vae)
        if self.vae.frozen:
            raise ValueError('KLAutoencoder trains its VAE: set vae.frozen=False')
        self.kl_weight = kl_weight
        self.threshold = threshold

    def _forward(self, inputs: Dict[str, Tensor], data_samples=None) -> Tensor:
        """The VAE's reconstruction of the images."""
        return self.vae.vae(inputs['img']).sample

    def loss(self, inputs: Dict[str, Tensor], data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        target = torch.cat([inputs['img'], mask_to_vae_input(stack_masks(data_samples, size=inputs['img'].shape[-2:]))])
        posterior = self.vae.vae.encode(target).latent_dist
        recon = self.vae.vae.decode(posterior.sample()).sample
        return dict(loss_rec=F.l1_loss(recon, target),
                    loss_kl=self.kl_weight * posterior.kl().mean())

    def predict(self, inputs: Dict[str, Tensor],
                data_samples: List[FusionDataSample]) -> List[FusionDataSample]:
        mask = mask_to_vae_input(stack_masks(data_samples, size=inputs['img'].shape[-2:]))
        prob = vae_output_to_prob(self.vae.from_latent(self.vae.to_latent(mask)[0]))
        return pack_seg_predictions(prob, data_samples, self.threshold)
