from typing import Dict, Optional

import torch.nn as nn
from mmengine.model import BaseDataPreprocessor

from mmfusion.registry import MODELS


@MODELS.register_module()
class MultiModalDataPreprocessor(BaseDataPreprocessor):
    """One sub-preprocessor per modality, over ``data['inputs']`` as a dict.

    Example::

        data_preprocessor = dict(
            type='MultiModalDataPreprocessor',
            img=dict(type='ImgDataPreprocessor', mean=[127.5] * 3,
                     std=[127.5] * 3, bgr_to_rgb=True))

    Each sub-preprocessor is any mmengine data preprocessor: it receives
    ``{'inputs': inputs[modality]}`` and returns its batched ``inputs``.
    Modalities without a sub-preprocessor (e.g. raw ``text`` strings) are only
    moved to the model's device. A sub-preprocessor may return extra keys
    next to ``inputs`` (e.g. ``lengths`` of padded audio or point clouds);
    they are added to the batch inputs as ``<modality>_<key>``
    (``audio_lengths``). For images, ``batch_input_shape`` (the padded
    batch size) is written into every data sample's metainfo, as mmdet does.
    """

    def __init__(self, non_blocking: bool = False, **modalities: Optional[dict]) -> None:
        super().__init__(non_blocking=non_blocking)
        self.preprocessors = nn.ModuleDict({
            name: MODELS.build(cfg) for name, cfg in modalities.items() if cfg is not None
        })

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs: Dict = data['inputs']
        if not isinstance(inputs, dict):
            raise TypeError('MultiModalDataPreprocessor expects data["inputs"] to be a dict '
                            f'keyed by modality (use PackFusionInputs), got {type(inputs).__name__}')
        batch_inputs = {}
        for name, value in inputs.items():
            if name in self.preprocessors:
                out = self.preprocessors[name]({'inputs': value}, training)
                batch_inputs[name] = out['inputs']
                batch_inputs.update({f'{name}_{key}': extra for key, extra in out.items()
                                     if key not in ('inputs', 'data_samples')})
            else:
                batch_inputs[name] = self.cast_data(value)
        data_samples = self.cast_data(data.get('data_samples'))
        if data_samples is not None and 'img' in batch_inputs:
            batch_input_shape = tuple(batch_inputs['img'].shape[-2:])
            for sample in data_samples:
                sample.set_metainfo(dict(batch_input_shape=batch_input_shape))
        return dict(inputs=batch_inputs, data_samples=data_samples)
