from typing import Dict, Optional

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmfusion.registry import MODELS
from mmfusion.utils.dependency import require

from .utils import full_lengths


@MODELS.register_module()
class LogMelFrontend(BaseModule):
    """Log-mel filterbank features of a padded waveform batch (torchaudio).

    Args:
        sample_rate: waveform sample rate in Hz.
        n_fft: FFT size in samples.
        win_length: window length in samples (``None``: ``n_fft``).
        hop_length: frame shift in samples (160 = 10 ms at 16 kHz).
        n_mels: number of mel bins.
        f_min / f_max: mel filterbank frequency range (``f_max=None``: Nyquist).
        center: pad the waveform by ``n_fft // 2`` on both sides (reflect), as
            ``torch.stft`` does; then a wave of ``L`` samples has
            ``L // hop_length + 1`` frames, otherwise
            ``(L - n_fft) // hop_length + 1``.
        log_offset: added to the mel power before the log, so silence maps to
            ``log(log_offset)`` instead of ``-inf``.
        power: exponent of the magnitude spectrogram (2: power).
        mel_scale: ``'htk'`` or ``'slaney'``.

    With ``center=True`` the last frames of a short utterance padded inside a
    batch see the padding instead of the reflected signal, so they differ
    slightly from the utterance computed alone; ``center=False`` frames only
    cover valid samples.
    """

    def __init__(self,
                 sample_rate: int = 16000,
                 n_fft: int = 400,
                 win_length: Optional[int] = None,
                 hop_length: int = 160,
                 n_mels: int = 80,
                 f_min: float = 0.0,
                 f_max: Optional[float] = None,
                 center: bool = True,
                 log_offset: float = 1e-6,
                 power: float = 2.0,
                 mel_scale: str = 'htk',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        torchaudio = require('torchaudio', 'LogMelFrontend')
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.center = center
        self.log_offset = log_offset
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            f_min=f_min, f_max=f_max, n_mels=n_mels, power=power, center=center,
            mel_scale=mel_scale)

    def num_frames(self, lengths: Tensor) -> Tensor:
        """Number of frames computed from ``lengths`` samples."""
        if self.center:
            return torch.div(lengths, self.hop_length, rounding_mode='floor') + 1
        frames = torch.div(lengths - self.n_fft, self.hop_length, rounding_mode='floor') + 1
        return frames.clamp(min=0)

    def forward(self, wave: Tensor, lengths: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Compute log-mel features.

        Args:
            wave: ``(B, T)`` waveforms, padded after each valid part.
            lengths: ``(B,)`` valid samples per waveform; ``None``: all ``T``.

        Returns:
            dict with ``feats`` ``(B, frames, n_mels)`` float32 and ``lengths``
            ``(B,)`` long, the valid frames of each item.
        """
        if wave.dim() != 2:
            raise ValueError('LogMelFrontend expects waveforms (B, T), '
                             f'got shape {tuple(wave.shape)}')
        if lengths is None:
            lengths = full_lengths(wave)
        # Quiet mel bins lose their digits in half precision before the log.
        with torch.autocast(device_type=wave.device.type, enabled=False):
            mel = self.mel(wave.float())  # (B, n_mels, frames)
            feats = torch.log(mel + self.log_offset).transpose(1, 2)
        return dict(feats=feats, lengths=self.num_frames(lengths.long()))
