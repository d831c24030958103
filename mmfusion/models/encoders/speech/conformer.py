from typing import Dict, Optional

import torch
from torch import Tensor, nn

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.registry import MODELS
from mmfusion.utils import load_state_dict_file, load_strict, select_prefix
from mmfusion.utils.dependency import require

from .log_mel import LogMelFrontend
from .utils import lengths_to_padding_mask


class Conv2dSubsampling(nn.Module):
    """Two stride-2 3x3 convolutions over (time, mel): 4x fewer frames.

    Unpadded convolutions, so every output frame only sees valid input
    frames: ``L -> (L - 1) // 2`` per convolution.
    """

    def __init__(self, in_features: int, channels: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU())
        freq = ((in_features - 1) // 2 - 1) // 2
        if freq < 1:
            raise ValueError('Conv2dSubsampling needs at least 7 input features, '
                             f'got {in_features}')
        self.out = nn.Linear(channels * freq, out_features)

    @staticmethod
    def num_frames(lengths: Tensor) -> Tensor:
        for _ in range(2):
            lengths = torch.div(lengths - 1, 2, rounding_mode='floor')
        return lengths.clamp(min=0)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple:
        """``(B, L, F)`` features -> ``(B, L', out_features)`` and ``(B,)`` lengths."""
        x = self.conv(feats.unsqueeze(1))  # (B, C, L', F')
        x = self.out(x.permute(0, 2, 1, 3).flatten(2))
        return x, self.num_frames(lengths)


@MODELS.register_module()
class ConformerEncoder(BaseEncoder):
    """Log-mel -> conv subsampling (4x) -> ``torchaudio.models.Conformer``.

    Args:
        frontend: :class:`LogMelFrontend` kwargs (default: 80 mels, 25 ms
            window, 10 ms hop at 16 kHz), so the encoder runs at 40 ms/frame.
        embed_dim: Conformer width.
        num_heads: attention heads.
        ffn_dim: feed-forward hidden width.
        num_layers: Conformer layers.
        depthwise_conv_kernel_size: kernel of the convolution module.
        dropout: dropout of every Conformer block.
        use_group_norm: GroupNorm instead of BatchNorm1d in the convolution
            module.
        convolution_first: convolution module before self-attention.
        subsampling_channels: channels of the subsampling convolutions
            (``None``: ``embed_dim``).
        checkpoint: a state dict file of this module (``.pth``/``.safetensors``,
            or an mmfusion checkpoint with ``prefix``). The frontend's fixed
            buffers (window, mel filterbank) may be absent from it.
        prefix: keep only keys starting with it (and strip it).
        frozen: trainable by default, unlike pretrained encoders.
        **kwargs: other :class:`BaseEncoder` options (``trainable_modules``,
            ``lora``, ``frozen_dtype``, ``init_cfg``). With ``frozen_dtype``
            the log-mel frontend still computes in float32 (its features are
            cast before the subsampling convolutions).

    The convolution modules of torchaudio's Conformer see padded frames, so
    valid frames of a padded batch differ (slightly) from the utterance
    computed alone; padded frames are excluded from attention.
    """

    def __init__(self,
                 frontend: Optional[dict] = None,
                 embed_dim: int = 144,
                 num_heads: int = 4,
                 ffn_dim: int = 576,
                 num_layers: int = 16,
                 depthwise_conv_kernel_size: int = 31,
                 dropout: float = 0.1,
                 use_group_norm: bool = False,
                 convolution_first: bool = False,
                 subsampling_channels: Optional[int] = None,
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 frozen: bool = False,
                 **kwargs) -> None:
        super().__init__(frozen=frozen, **kwargs)
        torchaudio = require('torchaudio', 'ConformerEncoder')
        self.frontend = LogMelFrontend(**(frontend or {}))
        self.subsampling = Conv2dSubsampling(
            self.frontend.n_mels, subsampling_channels or embed_dim, embed_dim)
        self.conformer = torchaudio.models.Conformer(
            input_dim=embed_dim, num_heads=num_heads, ffn_dim=ffn_dim, num_layers=num_layers,
            depthwise_conv_kernel_size=depthwise_conv_kernel_size, dropout=dropout,
            use_group_norm=use_group_norm, convolution_first=convolution_first)
        self.embed_dim = embed_dim
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, prefix)
        self._apply_freeze()

    def load_checkpoint(self, path: str, prefix: Optional[str] = None) -> None:
        """Load a state dict of this module (see ``checkpoint``)."""
        owner = type(self).__name__
        state_dict = select_prefix(load_state_dict_file(path), prefix, path, owner)
        # The frontend's buffers are recomputed from its config, not learned.
        load_strict(self, state_dict, path, owner, hint='check the Conformer arguments',
                    may_miss=lambda key: key.startswith('frontend.'))

    def _apply_freeze(self) -> None:
        # The log-mel frontend computes in float32 (see LogMelFrontend); keep
        # its window and filterbank out of the frozen_dtype cast, unrounded.
        fixed = {k: v.clone() for k, v in self.frontend.state_dict().items()}
        super()._apply_freeze()
        if self.frozen_dtype is not None:
            self.frontend.float().load_state_dict(fixed)

    def _cast_inputs_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple:
        # Waveforms go to the float32 frontend as they are; forward casts the
        # log-mel features to the frozen dtype.
        return args, kwargs

    def forward(self, wave: Tensor, lengths: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Encode a padded waveform batch.

        Args:
            wave: ``(B, T)`` waveforms at the frontend's sample rate.
            lengths: ``(B,)`` valid samples; ``None``: all ``T`` are valid.

        Returns:
            dict with ``last`` ``(B, frames, embed_dim)``, ``lengths`` ``(B,)``
            long valid frames and ``padding_mask`` ``(B, frames)`` bool, True
            at padded frames. ``frames`` is the longest valid length.
        """
        mel = self.frontend(wave, lengths)
        if bool((self.subsampling.num_frames(mel['lengths']) < 1).any()):
            raise ValueError(f'ConformerEncoder: input too short, {mel["lengths"].tolist()} mel '
                             'frames leave no frame after 4x subsampling (7 needed)')
        feats = mel['feats'].to(self.subsampling.out.weight.dtype)  # frozen_dtype
        x, frame_lengths = self.subsampling(feats, mel['lengths'])
        # torchaudio's Conformer sizes its padding mask by lengths.max().
        x = x[:, :int(frame_lengths.max())]
        x, frame_lengths = self.conformer(x, frame_lengths)
        return dict(last=x, lengths=frame_lengths,
                    padding_mask=lengths_to_padding_mask(frame_lengths, x.shape[1]))
