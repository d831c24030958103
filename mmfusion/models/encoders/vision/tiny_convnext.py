"""Tiny ConvNeXt trunks registered in timm's model registry, so that open_clip
builds CLIP image towers on them by name (``vision_cfg.timm_model_name``).

timm's ConvNeXt is used unchanged; only the sizes are new. CLIP's dense
classification (mask pooling, FrozenSeg / FC-CLIP) needs a final map with
several cells per object, and SynthShapes objects are 8-40 pixels in
96-pixel scenes: the official patch-4 stem and four stride-2 stages (stride
32) would leave a 3 x 3 map. ``convnext_synth_s8`` has a patch-1 stem, so its
four stages are at strides 1/2/4/8 (a 12 x 12 final map on a 96-pixel scene,
4 x 4 on a 32-pixel object crop).
"""
from timm.models import register_model
from timm.models.convnext import ConvNeXt

_PRETRAINED_KEYS = ('pretrained_cfg', 'pretrained_cfg_overlay', 'cache_dir')


def _tiny_convnext(name: str, **arch) -> ConvNeXt:
    def build(pretrained: bool = False, **kwargs) -> ConvNeXt:
        if pretrained:
            raise ValueError(f'{name} has no pretrained weights (mmfusion trains it)')
        # timm's factory passes its pretrained-config arguments to every model fn
        kwargs = {k: v for k, v in kwargs.items() if k not in _PRETRAINED_KEYS}
        model = ConvNeXt(**arch, **kwargs)
        # open_clip's TimmModel reads the default config (pool size) timm attaches
        model.pretrained_cfg = model.default_cfg = dict(architecture=name, num_classes=0)
        return model
    build.__name__ = name
    build.__module__ = __name__
    build.__doc__ = f'ConvNeXt {arch} (mmfusion).'
    return register_model(build)


convnext_synth_s8 = _tiny_convnext('convnext_synth_s8', depths=(1, 1, 1, 1),
                                   dims=(16, 32, 64, 128), patch_size=1)
