from typing import Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from mmfusion.models.common.sequence import pad_sequences
from mmfusion.registry import MODELS


@MODELS.register_module()
class AudioDataPreprocessor(BaseDataPreprocessor):
    """Pad mono waveforms into a batch, with their lengths.

    Meant as the ``audio`` sub-preprocessor of
    :class:`MultiModalDataPreprocessor`, which exposes ``lengths`` to the
    model as ``inputs['audio_lengths']``.

    Args:
        pad_value: value of the samples after each waveform.
        normalize: normalise each waveform to zero mean and unit variance over
            its valid samples, ``(x - mean) / sqrt(var + 1e-7)``, as the
            wav2vec2 feature extractor of transformers does (needed by the
            large wav2vec2/HuBERT checkpoints, not by ``wav2vec2_base``).
            Padding keeps ``pad_value``.
        non_blocking: see mmengine's ``BaseDataPreprocessor``.
    """

    EPS = 1e-7

    def __init__(self, pad_value: float = 0.0, normalize: bool = False,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        self.pad_value = float(pad_value)
        self.normalize = normalize

    def forward(self, data: dict, training: bool = False) -> dict:
        """Pad ``data['inputs']`` (a list of ``(T_i,)`` tensors or a ``(B, T)`` tensor).

        Returns:
            dict with ``inputs`` ``(B, max T_i)`` float32 on the model's
            device, ``lengths`` ``(B,)`` long, and ``data_samples`` when
            ``data`` has them.
        """
        data = self.cast_data(data)
        waves = [wave.float() for wave in self._as_list(data['inputs'])]
        if self.normalize:
            # Population variance over the valid part only, like transformers.
            waves = [(w - w.mean()) / torch.sqrt(w.var(unbiased=False) + self.EPS) for w in waves]
        batch, lengths = pad_sequences(waves, self.pad_value)
        out = dict(inputs=batch, lengths=lengths)
        if 'data_samples' in data:
            out['data_samples'] = data['data_samples']
        return out

    @staticmethod
    def _as_list(inputs: Union[Tensor, Sequence[Tensor]]) -> list:
        if torch.is_tensor(inputs):
            if inputs.dim() != 2:
                raise ValueError(f'AudioDataPreprocessor expects a (B, T) tensor or a list of '
                                 f'(T,) waveforms, got a tensor of shape {tuple(inputs.shape)}')
            return list(inputs.unbind(0))
        waves = list(inputs)
        if not waves:
            raise ValueError('AudioDataPreprocessor got an empty batch')
        for i, wave in enumerate(waves):
            if not torch.is_tensor(wave) or wave.dim() != 1:
                shape = tuple(wave.shape) if torch.is_tensor(wave) else type(wave).__name__
                raise ValueError(f'AudioDataPreprocessor expects mono (T,) waveforms, item {i} is '
                                 f'{shape}; load audio with LoadAudioFromFile(mono=True)')
        return waves
