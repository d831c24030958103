"""Discrete speech units: k-means over normalised frame features.

The speech tower of Zipper reads and writes discrete units. The paper (and
HuBERT-style tokenizers) cluster self-supervised features:
:class:`SSLSpeechUnitTokenizer` clusters a layer of a wav2vec2/HuBERT encoder
(``Wav2Vec2Encoder``). Without pretrained weights here, the default units are
:class:`SpeechUnitTokenizer`'s, over log-mel frames (80 bins, 25 ms windows
every 20 ms: 50 frames/s). Features are standardised with statistics of the
fitting set; k-means is scikit-learn's; encoding is the nearest centroid.
``tools/misc/fit_speech_units.py`` fits a tokenizer on a manifest and saves
it; models load the file and keep the centroids in their state dict.
"""
import io
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from mmfusion.models.encoders.speech import LogMelFrontend
from mmfusion.registry import TOKENIZERS
from mmfusion.utils.dependency import require


@TOKENIZERS.register_module()
class SpeechUnitTokenizer(nn.Module):
    """Waveform -> unit ids (k-means over standardised log-mel frames).

    Args:
        num_units (int): Clusters.
        sample_rate (int): Rate the features are computed at; other rates
            are resampled (``torchaudio.functional.resample``).
        n_mels (int): Mel bins.
        win_ms (float): Analysis window.
        hop_ms (float): Frame step (20 ms: 50 units/s before deduplication).
        dedup (bool): Merge runs of the same unit (HuBERT-style reduced units).
        normalise (str): ``'global'`` standardises frames with the fitting
            set's statistics; ``'utterance'`` with each utterance's own mean
            and standard deviation (cepstral mean and variance normalisation),
            which removes much of the speaker and channel, so units transfer
            better to unseen voices.
        checkpoint (str, optional): A file written by :meth:`save`.
    """

    def __init__(self, num_units: int = 64, sample_rate: int = 16000, n_mels: int = 80,
                 win_ms: float = 25.0, hop_ms: float = 20.0, dedup: bool = True,
                 normalise: str = 'global', checkpoint: Optional[str] = None) -> None:
        super().__init__()
        if normalise not in ('global', 'utterance'):
            raise ValueError(f"normalise must be 'global' or 'utterance', got {normalise!r}")
        self.normalise = normalise
        self.num_units = num_units
        self.sample_rate = sample_rate
        self.dedup = dedup
        win = int(round(sample_rate * win_ms / 1000))
        # Frames cover valid samples only (center=False).
        self.frontend = LogMelFrontend(
            sample_rate=sample_rate, n_fft=max(512, win), win_length=win,
            hop_length=int(round(sample_rate * hop_ms / 1000)), n_mels=n_mels, center=False)
        self.register_buffer('centroids', torch.zeros(num_units, n_mels))
        self.register_buffer('mean', torch.zeros(n_mels))
        self.register_buffer('std', torch.ones(n_mels))
        self.register_buffer('fitted', torch.tensor(False))
        if checkpoint is not None:
            self.load(checkpoint)

    # -- features ----------------------------------------------------------
    def log_mel(self, wave: Tensor, sample_rate: Optional[int] = None) -> Tensor:
        """(T,) or (1, T) waveform -> (frames, n_mels) log-mel; with
        ``normalise='utterance'`` standardised over the utterance."""
        wave = torch.as_tensor(wave, dtype=torch.float32).flatten()
        if sample_rate is not None and sample_rate != self.sample_rate:
            import torchaudio.functional as AF
            wave = AF.resample(wave, sample_rate, self.sample_rate)
        if not self.frontend.num_frames(torch.tensor(wave.numel())):
            raise ValueError(f'audio of {wave.numel()} samples is shorter than one '
                             f'{self.frontend.n_fft}-sample analysis window')
        log_mel = self.frontend(wave[None])['feats'][0]
        if self.normalise == 'utterance':
            log_mel = (log_mel - log_mel.mean(0)) / log_mel.std(0).clamp_min(1e-3)
        return log_mel

    def frame_features(self, wave: Tensor, sample_rate: Optional[int] = None) -> Tensor:
        """(frames, dim) features that are clustered, before standardisation."""
        return self.log_mel(wave, sample_rate)

    def features(self, wave: Tensor, sample_rate: Optional[int] = None) -> Tensor:
        return (self.frame_features(wave, sample_rate) - self.mean) / self.std

    # -- fitting -----------------------------------------------------------
    def fit(self, waves: Sequence, sample_rate: Optional[int] = None,
            max_frames: int = 200_000, seed: int = 0) -> dict:
        """Standardisation statistics and k-means centroids from ``waves``
        (at most ``max_frames`` frames, sampled uniformly). Returns a summary."""
        sklearn_cluster = require('sklearn', 'SpeechUnitTokenizer.fit').cluster
        frames = torch.cat([self.frame_features(w, sample_rate) for w in waves])
        if frames.shape[0] < self.num_units:
            raise ValueError(f'{frames.shape[0]} frames cannot fit {self.num_units} units')
        rng = np.random.default_rng(seed)
        chosen = None
        if frames.shape[0] > max_frames:
            chosen = torch.from_numpy(rng.choice(frames.shape[0], max_frames, replace=False))
            frames = frames[chosen]
        self.mean.copy_(frames.mean(0))
        self.std.copy_(frames.std(0).clamp_min(1e-3))
        x = ((frames - self.mean) / self.std).numpy()
        kmeans = sklearn_cluster.KMeans(self.num_units, n_init=1, random_state=seed).fit(x)
        self.centroids.copy_(torch.from_numpy(kmeans.cluster_centers_).float())
        self._fit_unit_log_mel(waves, sample_rate, chosen, torch.from_numpy(kmeans.labels_))
        self.fitted.fill_(True)
        used = len(np.unique(kmeans.labels_))
        return dict(frames=int(x.shape[0]), units_used=used, inertia=float(kmeans.inertia_))

    def _fit_unit_log_mel(self, waves: Sequence, sample_rate: Optional[int],
                          chosen: Optional[Tensor], labels: Tensor) -> None:
        """Log-mel frames are the clustered features: nothing to add."""

    def unit_log_mel(self) -> Tensor:
        """(num_units, n_mels): the log-mel frame each unit stands for."""
        return self.centroids * self.std + self.mean

    # -- quantizing --------------------------------------------------------
    def frame_units(self, wave: Tensor, sample_rate: Optional[int] = None) -> Tensor:
        """One unit per 20 ms frame, before deduplication."""
        if not bool(self.fitted):
            raise RuntimeError('SpeechUnitTokenizer is not fitted: run '
                               'tools/misc/fit_speech_units.py or give checkpoint=')
        feats = self.features(wave, sample_rate)
        return torch.cdist(feats, self.centroids).argmin(dim=1)

    def quantize(self, wave: Tensor, sample_rate: Optional[int] = None) -> Tensor:
        """The unit ids of one waveform (consecutive repeats merged with ``dedup``)."""
        units = self.frame_units(wave, sample_rate)
        if self.dedup:
            units = torch.unique_consecutive(units)
        return units

    def quantize_batch(self, audio: Sequence[Tensor],
                       lengths: Optional[Tensor] = None) -> List[Tensor]:
        """Units of each waveform of a padded batch (only its first
        ``lengths[i]`` samples when given), computed on the CPU."""
        units = []
        for i, wave in enumerate(audio):
            if lengths is not None:
                wave = wave[:int(lengths[i])]
            units.append(self.quantize(wave.float().cpu()))
        return units

    # -- units to audio ------------------------------------------------------
    def units_to_log_mel(self, units: Tensor, frames_per_unit: float = 2.0) -> Tensor:
        """Mel lookup: each unit's centroid, de-standardised to a log-mel
        frame and repeated for ``frames_per_unit`` frames on average
        (deduplicated units lost their run lengths; the fitted SynthSpeech
        units run 2.1 frames on average: 50 frames/s against 23.7 units/s).
        Returns (frames, n_mels). Only for ``normalise='global'`` (an
        utterance-normalised unit has no absolute level)."""
        if not bool(self.fitted):
            raise RuntimeError('SpeechUnitTokenizer is not fitted')
        if self.normalise != 'global':
            raise ValueError("units_to_log_mel needs normalise='global' units")
        units = torch.as_tensor(units, dtype=torch.long).flatten()
        if units.numel() and not 0 <= int(units.min()) <= int(units.max()) < self.num_units:
            raise ValueError(f'units must lie in [0, {self.num_units}), got '
                             f'[{int(units.min())}, {int(units.max())}]')
        # Fractional rates: unit k covers frames [round(k * r), round((k + 1) * r)).
        edges = torch.round(torch.arange(units.numel() + 1) * frames_per_unit).long()
        repeats = (edges[1:] - edges[:-1]).clamp_min(1)
        return self.unit_log_mel()[units.repeat_interleave(repeats)]

    def units_to_wave(self, units: Tensor, frames_per_unit: float = 2.0,
                      n_iter: int = 32) -> Tensor:
        """Audible waveform (samples,) at ``sample_rate`` from units:
        :meth:`units_to_log_mel`, then torchaudio's ``InverseMelScale`` and
        ``GriffinLim`` with the analysis frontend's STFT settings."""
        import torchaudio
        log_mel = self.units_to_log_mel(units, frames_per_unit)
        front = self.frontend
        mel = (log_mel.exp() - front.log_offset).clamp_min(0).T  # (n_mels, frames)
        spec_cfg = front.mel.spectrogram
        mel_cfg = front.mel.mel_scale
        inverse = torchaudio.transforms.InverseMelScale(
            n_stft=spec_cfg.n_fft // 2 + 1, n_mels=mel_cfg.n_mels, sample_rate=self.sample_rate,
            f_min=mel_cfg.f_min, f_max=mel_cfg.f_max, mel_scale=mel_cfg.mel_scale,
            driver='gelsd')  # 80 mel bins over 201 STFT bins: rank-deficient for 'gels'
        griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=spec_cfg.n_fft, win_length=spec_cfg.win_length, hop_length=spec_cfg.hop_length,
            power=spec_cfg.power, n_iter=n_iter)
        torch.manual_seed(0)  # Griffin-Lim starts from random phases
        wave = griffin_lim(inverse(mel))
        return wave / wave.abs().max().clamp_min(1e-8) * 0.9

    # -- files -------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write the fitted state atomically (temporary file + rename)."""
        from mmfusion.utils.checkpoint import AtomicLocalBackend
        buffer = io.BytesIO()
        torch.save(dict(num_units=self.num_units, sample_rate=self.sample_rate,
                        normalise=self.normalise, state_dict=self.state_dict()), buffer)
        AtomicLocalBackend().put(buffer.getvalue(), path)

    def load(self, path: str) -> None:
        from mmfusion.utils.checkpoint import load_strict, safe_torch_load
        ckpt = safe_torch_load(path, map_location='cpu')
        saved = (ckpt.get('num_units'), ckpt.get('sample_rate'), ckpt.get('normalise', 'global'))
        if saved != (self.num_units, self.sample_rate, self.normalise):
            raise ValueError(f'speech unit file {path} has {saved[0]} units at {saved[1]} Hz '
                             f'({saved[2]} normalisation); this tokenizer expects '
                             f'{self.num_units} units at {self.sample_rate} Hz '
                             f'({self.normalise} normalisation)')
        load_strict(self, ckpt['state_dict'], path, type(self).__name__,
                    hint='the units were fitted on other features (log-mel units need '
                         'SpeechUnitTokenizer; encoder units SSLSpeechUnitTokenizer with the '
                         'encoder they were fitted with)')


@TOKENIZERS.register_module()
class SSLSpeechUnitTokenizer(SpeechUnitTokenizer):
    """Waveform -> unit ids by k-means over one layer of a self-supervised
    speech encoder (HuBERT/wav2vec2 through ``Wav2Vec2Encoder``), as
    HuBERT-style discrete units are made.

    The encoder is part of the tokenizer (frozen, in its state dict and in
    the units file), so a randomly initialised encoder gives the same units
    after loading. Its frames (a 400-sample receptive field every 320
    samples) are the log-mel frames of the base class (25 ms windows every
    20 ms, no centring; the 512-point FFT frame may drop a last frame, which
    is then dropped here too), so each unit also keeps the mean log-mel of
    its frames, for :meth:`units_to_log_mel` (TTS audio).

    Args:
        encoder (dict): ``Wav2Vec2Encoder`` config (``arch``, ``checkpoint``);
            frozen.
        layer (int): Transformer layer whose output is clustered (1-based;
            only the first ``layer`` layers run).
        num_units, sample_rate, n_mels, dedup, normalise, checkpoint: as
            :class:`SpeechUnitTokenizer` (``normalise`` applies to the encoder
            features; the mel settings to the unit log-mels).
    """

    def __init__(self, encoder: dict, layer: int, num_units: int = 64,
                 sample_rate: int = 16000, n_mels: int = 80, dedup: bool = True,
                 normalise: str = 'global', checkpoint: Optional[str] = None) -> None:
        super().__init__(num_units=num_units, sample_rate=sample_rate, n_mels=n_mels,
                         dedup=dedup, normalise=normalise)
        from mmfusion.registry import MODELS
        self.encoder = MODELS.build(dict(encoder, num_layers=layer, frozen=True))
        self.layer = layer
        dim = self.encoder.embed_dim
        self.centroids = torch.zeros(num_units, dim)
        self.mean = torch.zeros(dim)
        self.std = torch.ones(dim)
        self.register_buffer('mel_centroids', torch.zeros(num_units, n_mels))
        if checkpoint is not None:
            self.load(checkpoint)

    def frame_features(self, wave: Tensor, sample_rate: Optional[int] = None) -> Tensor:
        """(frames, C) output of transformer layer ``layer`` for one waveform."""
        log_mel = self.log_mel(wave, sample_rate)  # resamples and checks the length
        wave = torch.as_tensor(wave, dtype=torch.float32).flatten()
        if sample_rate is not None and sample_rate != self.sample_rate:
            import torchaudio.functional as AF
            wave = AF.resample(wave, sample_rate, self.sample_rate)
        device = self.centroids.device
        with torch.no_grad():
            feats = self.encoder(wave[None].to(device))['feats'][-1][0].float().cpu()
        if feats.shape[0] - log_mel.shape[0] in (0, 1):
            feats = feats[:log_mel.shape[0]]
        else:
            raise ValueError(f'SSLSpeechUnitTokenizer: the encoder gives {feats.shape[0]} frames '
                             f'for {log_mel.shape[0]} log-mel frames; its conv layers must '
                             'have a 400-sample receptive field and a 320-sample stride')
        if self.normalise == 'utterance':
            feats = (feats - feats.mean(0)) / feats.std(0).clamp_min(1e-3)
        return feats

    def _fit_unit_log_mel(self, waves: Sequence, sample_rate: Optional[int],
                          chosen: Optional[Tensor], labels: Tensor) -> None:
        """Mean (unnormalised) log-mel frame of each unit's clustered frames."""
        normalise, self.normalise = self.normalise, 'global'
        log_mel = torch.cat([self.log_mel(w, sample_rate) for w in waves])
        self.normalise = normalise
        if chosen is not None:
            log_mel = log_mel[chosen]
        sums = torch.zeros_like(self.mel_centroids).index_add_(0, labels, log_mel)
        counts = torch.bincount(labels, minlength=self.num_units).clamp_min(1)[:, None]
        self.mel_centroids.copy_(sums / counts)

    def unit_log_mel(self) -> Tensor:
        return self.mel_centroids
