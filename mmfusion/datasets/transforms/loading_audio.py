import io
import logging
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import print_log

from mmfusion.registry import TRANSFORMS
from mmfusion.utils.dependency import require


@TRANSFORMS.register_module()
class LoadAudioFromFile(BaseTransform):
    """Read an audio file with soundfile (WAV, FLAC, OGG, ...) at a fixed rate.

    Required keys: ``key`` (default ``audio_path``).

    Added keys:
        - ``audio``: ``np.float32`` waveform, ``(T,)`` when ``mono`` else
          ``(C, T)``, in [-1, 1] for integer PCM files.
        - ``sample_rate``: the rate of ``audio`` (``sample_rate`` argument).
        - ``ori_sample_rate``: the file's rate.
        - ``audio_length``: ``T``, samples after resampling.

    Args:
        sample_rate: target rate in Hz. Files at another rate are resampled
            with ``torchaudio.functional.resample``, and a warning naming the
            rate is logged once per transform instance and rate (per
            dataloader worker).
        mono: average the channels into one.
        strict: refuse files at another rate instead of resampling.
        key: the results key holding the file path.
        backend_args: mmengine file backend arguments.
    """

    def __init__(self,
                 sample_rate: int = 16000,
                 mono: bool = True,
                 strict: bool = False,
                 key: str = 'audio_path',
                 backend_args: Optional[dict] = None) -> None:
        self.sample_rate = int(sample_rate)
        self.mono = mono
        self.strict = strict
        self.key = key
        self.backend_args = backend_args
        self._warned_rates = set()

    def transform(self, results: dict) -> dict:
        if self.key not in results:
            raise KeyError(f'LoadAudioFromFile needs results[{self.key!r}] (the audio file path); '
                           f'keys: {sorted(results)}')
        path = results[self.key]
        wave, rate = self._read(path)
        if rate != self.sample_rate:
            if self.strict:
                raise ValueError(f'audio file {path} has sample rate {rate} Hz, expected '
                                 f'{self.sample_rate} Hz (strict=True; strict=False resamples)')
            if rate not in self._warned_rates:
                self._warned_rates.add(rate)
                print_log(f'LoadAudioFromFile: resampling audio from {rate} Hz to '
                          f'{self.sample_rate} Hz (first file: {path}); further files at '
                          f'{rate} Hz are resampled silently',
                          logger='current', level=logging.WARNING)
            functional = require('torchaudio', 'LoadAudioFromFile (resampling)').functional
            wave = functional.resample(torch.from_numpy(wave), rate, self.sample_rate).numpy()
        results['audio'] = np.ascontiguousarray(wave, dtype=np.float32)
        results['sample_rate'] = self.sample_rate
        results['ori_sample_rate'] = rate
        results['audio_length'] = wave.shape[-1]
        return results

    def _read(self, path: str) -> tuple:
        """File -> (waveform (T,) or (C, T) float32, rate)."""
        soundfile = require('soundfile', 'LoadAudioFromFile')
        try:
            raw = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'audio file not found: {path}') from e
        except Exception as e:  # I/O errors from the file backend
            raise ValueError(f'cannot read audio file {path}: {e}') from e
        try:
            data, rate = soundfile.read(io.BytesIO(raw), dtype='float32', always_2d=True)
        except Exception as e:  # soundfile raises its own error types for bad bytes
            raise ValueError(f'cannot decode audio file {path}: not an audio format soundfile '
                             f'reads ({e})') from e
        if data.shape[0] == 0:
            raise ValueError(f'audio file {path} has no samples')
        wave = data.T  # (C, T)
        # Mixing before resampling is cheaper and gives the same result (both are linear).
        return (wave.mean(axis=0) if self.mono else wave), int(rate)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(sample_rate={self.sample_rate}, mono={self.mono}, '
                f'strict={self.strict}, key={self.key!r}, backend_args={self.backend_args})')
