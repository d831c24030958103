from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from torch import Tensor

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample


def stack_masks(data_samples: Sequence[FusionDataSample],
                size: Optional[Sequence[int]] = None) -> Tensor:
    """(B, 1, H, W) float masks in {0, 1} from ``gt_sem_seg``, each resized
    (nearest) to ``size`` when given (test pipelines keep masks at their
    original, possibly different, sizes)."""
    masks = [s.gt_sem_seg.data[None].float().clamp(0, 1) for s in data_samples]
    if size is not None:
        masks = [m if tuple(m.shape[-2:]) == tuple(size) else
                 F.interpolate(m, size=tuple(size), mode='nearest') for m in masks]
    return torch.cat(masks)


def mask_to_vae_input(mask: Tensor) -> Tensor:
    """(B, 1, H, W) mask in {0, 1} -> 3-channel image in [-1, 1] for the VAE."""
    return (mask * 2 - 1).expand(-1, 3, -1, -1)


def vae_output_to_prob(decoded: Tensor) -> Tensor:
    """Decoded 3-channel mask image -> (B, 1, H, W) foreground probability."""
    return ((decoded.mean(dim=1, keepdim=True) + 1) / 2).clamp(0, 1)


def pack_seg_predictions(probs: Tensor, data_samples: Sequence[FusionDataSample],
                         threshold: float, to_original_size: bool = True
                         ) -> List[FusionDataSample]:
    """Crop each probability map to its ``img_shape``, resize it to
    ``ori_shape`` (bilinear; unless ``to_original_size`` is False), threshold
    it, and store ``pred_sem_seg`` (``data``: 1xHxW long, ``score``: 1xHxW
    probability)."""
    for prob, sample in zip(probs, data_samples):
        h, w = sample.metainfo.get('img_shape', prob.shape[-2:])[:2]
        prob = prob[:, :h, :w]
        ori_shape = sample.metainfo.get('ori_shape', (h, w))[:2]
        if to_original_size and tuple(prob.shape[-2:]) != tuple(ori_shape):
            prob = F.interpolate(prob[None], size=ori_shape, mode='bilinear', align_corners=False)[0]
        sample.pred_sem_seg = PixelData(data=(prob > threshold).long(), score=prob)
    return list(data_samples)


@MODELS.register_module()
class GMS(FusionBaseModel):
    """Generative Medical Segmentation (Huo et al., 2024).

    A frozen KL-VAE maps image and mask to latents; a small mapping network
    learns image latent -> mask latent; the frozen decoder turns the predicted
    latent back into a mask.

    Loss, summed over ``supervised_levels`` of the mapping network's deep
    supervision: latent MSE against the mask's posterior mean, plus Dice on
    the decoded mask (its gradient flows through the frozen decoder into the
    mapping network). With probability ``posterior_sample_prob`` the image
    latent is perturbed as augmentation, ``posterior_noise`` saying how:

    - ``'unscaled'`` (official GMS ``train.py``): the *scaled* posterior mean
      plus the *unscaled* posterior std times eps, i.e.
      ``s * mu + exp(0.5 * logvar) * eps``; with the SD-2 VAE (s = 0.18215)
      that is 1/s = 5.5x the spread of a posterior sample.
    - ``'scaled'``: a sample of the scaled posterior, ``s * (mu + std * eps)``.

    The two coincide when the VAE's scale factor is 1.

    Inference: encode -> map -> decode -> channel mean -> ``(x + 1) / 2`` ->
    threshold, into ``pred_sem_seg``, resized to each image's original size;
    ``pred_at_input_size=True`` keeps the network's input size instead (the
    official evaluation: predictions and masks at 224x224, the masks resized
    by the test pipeline).
    """

    def __init__(self,
                 vae: dict,
                 mapping_net: dict,
                 data_preprocessor: Optional[dict] = None,
                 loss_latent: dict = dict(type='mmdet.MSELoss', loss_weight=1.0),
                 loss_dice: dict = dict(type='mmdet.DiceLoss', use_sigmoid=False, activate=False,
                                        naive_dice=True, eps=1e-5, loss_weight=1.0),
                 supervised_levels: Sequence[str] = ('level2', 'level1', 'out'),
                 posterior_sample_prob: float = 0.5,
                 posterior_noise: str = 'unscaled',
                 threshold: float = 0.5,
                 pred_at_input_size: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.vae = MODELS.build(vae)
        self.mapping_net = MODELS.build(mapping_net)
        self.loss_latent = MODELS.build(loss_latent)
        self.loss_dice = MODELS.build(loss_dice)
        self.supervised_levels = tuple(supervised_levels)
        missing = set(self.supervised_levels) - set(self.mapping_net.heads)
        if missing:
            raise ValueError(f'supervised_levels {sorted(missing)} have no head in the mapping '
                             f'network (its out_levels: {tuple(self.mapping_net.heads)})')
        if posterior_noise not in ('unscaled', 'scaled'):
            raise ValueError(f"posterior_noise must be 'unscaled' (official) or 'scaled', "
                             f'got {posterior_noise!r}')
        self.posterior_sample_prob = posterior_sample_prob
        self.posterior_noise = posterior_noise
        self.threshold = threshold
        self.pred_at_input_size = pred_at_input_size

    def _forward(self, inputs: Dict[str, Tensor], data_samples=None) -> Dict[str, Tensor]:
        """The mapping network's latents (every supervised level)."""
        return self.mapping_net(self.vae.to_latent(inputs['img'])[0])

    def loss(self, inputs: Dict[str, Tensor], data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        mask = stack_masks(data_samples, size=inputs['img'].shape[-2:])
        with torch.no_grad():
            img_mean, img_std = self.vae.to_latent(inputs['img'])
            mask_latent = self.vae.to_latent(mask_to_vae_input(mask))[0]
        # One draw per batch, as in the reference implementation.
        if torch.rand(()) < self.posterior_sample_prob:
            if self.posterior_noise == 'unscaled':
                img_std = img_std / self.vae.scale_factor
            img_mean = img_mean + img_std * torch.randn_like(img_std)
        preds = self.mapping_net(img_mean)
        losses = {}
        for level in self.supervised_levels:
            losses[f'loss_latent_{level}'] = self.loss_latent(preds[level], mask_latent)
            prob = vae_output_to_prob(self.vae.from_latent(preds[level]))
            losses[f'loss_dice_{level}'] = self.loss_dice(prob.flatten(1), mask.flatten(1))
        return losses

    def predict(self, inputs: Dict[str, Tensor],
                data_samples: Optional[List[FusionDataSample]] = None) -> List[FusionDataSample]:
        img = inputs['img']
        latent = self.mapping_net(self.vae.to_latent(img)[0])['out']
        prob = vae_output_to_prob(self.vae.from_latent(latent))
        data_samples = self.fill_data_samples(data_samples, img.shape[0])
        return pack_seg_predictions(prob, data_samples, self.threshold,
                                    to_original_size=not self.pred_at_input_size)
