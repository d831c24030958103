"""Any timm model as a multi-scale feature extractor."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from torch import Tensor

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.registry import MODELS
from mmfusion.utils.dependency import require


@MODELS.register_module()
class TimmBackbone(BaseEncoder):
    """A timm model built with ``features_only=True``.

    Args:
        model_name: any name from ``timm.list_models()``, e.g. ``'resnet50'``,
            ``'convnext_tiny'``, ``'vit_base_patch16_224'``.
        out_indices: which feature levels to return (timm's ``out_indices``;
            ``None`` keeps timm's default for the model).
        checkpoint: a local weights file in timm's own format (the state dict
            of ``timm.create_model(model_name)``, with or without classifier,
            ``.pth``/``.bin``/``.safetensors``). It is loaded by timm itself
            (``pretrained_cfg_overlay=dict(file=...)``), so the model's
            checkpoint filter (e.g. for original ViT/ConvNeXt layouts) and
            classifier removal apply; loading is strict otherwise. Nothing is
            downloaded: without it the weights are random.
        model_kwargs: further ``timm.create_model`` arguments (``img_size``,
            ``drop_path_rate``, ``in_chans``, ...).
        **kwargs: :class:`BaseEncoder` options (``frozen``,
            ``trainable_modules``, ``lora``, ``frozen_dtype``, ``init_cfg``).

    Attributes:
        channels: channels of each returned map.
        strides: reduction (input size / map size) of each returned map.
    """

    def __init__(self,
                 model_name: str,
                 out_indices: Optional[Sequence[int]] = None,
                 checkpoint: Optional[str] = None,
                 model_kwargs: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        timm = require('timm', 'TimmBackbone')
        if not timm.is_model(model_name):
            close = timm.list_models(f'*{model_name.split("_")[0]}*')[:8]
            raise ValueError(f'TimmBackbone: timm has no model {model_name!r}; similar: {close}')
        create_kwargs = dict(model_kwargs or {})
        if out_indices is not None:
            create_kwargs['out_indices'] = tuple(out_indices)
        if checkpoint is not None:
            if not osp.isfile(checkpoint):
                raise FileNotFoundError(f'TimmBackbone: checkpoint file not found: {checkpoint}')
            # timm's own loader: weights_only torch.load / safetensors, the
            # model's checkpoint filter, strict load, classifier dropped.
            create_kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=checkpoint))
        try:
            self.model = timm.create_model(model_name, features_only=True, **create_kwargs)
        except (RuntimeError, KeyError) as e:  # strict load / a model's checkpoint filter
            if checkpoint is None:
                raise
            raise RuntimeError(f'TimmBackbone: the weights in {checkpoint} do not fit timm model '
                               f'{model_name!r} (model_kwargs={model_kwargs}): {str(e)[:500]}'
                               ) from e
        self.model_name = model_name
        self.channels: List[int] = list(self.model.feature_info.channels())
        self.strides: List[int] = list(self.model.feature_info.reduction())
        # A few families (e.g. Swin) emit channels-last maps.
        self._channels_last = getattr(self.model, 'output_fmt', 'NCHW') == 'NHWC'
        self._apply_freeze()

    def forward(self, img: Tensor) -> Dict[str, List[Tensor]]:
        """Extract feature maps.

        Args:
            img: (B, in_chans, H, W), normalised as the timm model expects
                (see ``self.model.pretrained_cfg['mean'/'std']``).

        Returns:
            dict with ``maps``: one (B, channels[i], H/strides[i],
            W/strides[i]) tensor per out index, finest first.
        """
        out = self.model(img)
        maps = list(out.values()) if isinstance(out, dict) else list(out)
        if self._channels_last:
            maps = [m.permute(0, 3, 1, 2) for m in maps]
        return dict(maps=maps)
