from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.model import BaseDataPreprocessor

from mmfusion.registry import MODELS
from mmfusion.utils.compile import HostSequence


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

    #: Under torch.compile (``mmfusion.utils.compile.prepare_for_compile`` turns it on), lists of
    #: strings (texts) are passed as an opaque ``HostSequence``, which dynamo does not guard.
    opaque_host_inputs: bool = False

    def __init__(self, non_blocking: bool = False, **modalities: Optional[dict]) -> None:
        super().__init__(non_blocking=non_blocking)
        self.preprocessors = nn.ModuleDict({
            name: MODELS.build(cfg) for name, cfg in modalities.items() if cfg is not None
        })

    # torch.compile: this frame runs eagerly (the modality preprocessors it calls compile): the
    # batch dict it rebuilds holds raw strings (texts), which dynamo would guard, every batch.
    @torch.compiler.disable(recursive=False)
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
                if self.opaque_host_inputs and _is_text_list(value):
                    batch_inputs[name] = HostSequence(value)
        data_samples = self.cast_data(data.get('data_samples'))
        if data_samples is not None and 'img' in batch_inputs:
            batch_input_shape = tuple(batch_inputs['img'].shape[-2:])
            for sample in data_samples:
                sample.set_metainfo(dict(batch_input_shape=batch_input_shape))
        return dict(inputs=batch_inputs, data_samples=data_samples)


def _is_text_list(value) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
