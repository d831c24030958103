"""Inferencers of the speech, captioning-student and point-cloud families.

* :class:`ASRInferencer`: Zipper ASR models (and the vocabulary-expansion
  baseline): speech files, folders or waveforms -> transcripts; drawing: the
  log-mel spectrogram with the transcript.
* :class:`TTSInferencer`: Zipper TTS models: texts -> speech units ->
  waveform (mel lookup of the units + Griffin-Lim); the drawing is the
  waveform, written as WAV.
* :class:`MambaCaptionInferencer`: the mmMamba teacher and its linear /
  hybrid Mamba-2 students: images -> greedy captions.
* :class:`PointCloudZeroShotInferencer`: ``PointCLIPAligner`` (I2P-MAE
  zero-shot): point files or arrays + free-form class names -> ranking;
  drawing: the teacher's depth views and the points coloured by its saliency,
  with the top-k classes.

Configs given as files (or :class:`Config`) lose the weight files they name
for their parts (pre-trained towers, unit files, teacher checkpoints) when
those are not on this machine, with a warning: a trained checkpoint holds
every weight (``mmfusion.apis.get_model`` does the same for index names).
"""
import os
import os.path as osp
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn

from mmfusion.registry import INFERENCERS
from mmfusion.structures import FusionDataSample

from .base_inferencer import FusionInferencer, ModelSpec, read_rgb

AUDIO_SUFFIXES = ('.wav', '.flac', '.ogg', '.mp3', '.aiff', '.aif')
TEXT_SUFFIXES = ('.txt', )
POINT_SUFFIXES = ('.npy', '.txt', '.xyz', '.ply', '.off', '.obj', '.stl')
MESH_SUFFIXES = ('.off', '.obj', '.stl')
AXIS_NAMES = 'xyz'


class _SequenceInferencer(FusionInferencer):
    """Drops the config's missing weight files before building; draws with
    one :class:`FusionVisualizer` of its own."""

    def _init_pipeline(self, cfg):
        return None  # inputs are read by ``preprocess``

    def _batches(self, items: list, batch_size: int) -> Iterable[list]:
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        for start in range(0, len(items), batch_size):
            yield items[start:start + batch_size]


def _describe(item: Any, index: int) -> str:
    return str(item) if isinstance(item, (str, Path)) else f'input {index}'


# -- speech ---------------------------------------------------------------------
def log_mel_image(wave: np.ndarray, tokenizer, height: int = 240) -> np.ndarray:
    """RGB uint8 image of the log-mel spectrogram the unit tokenizer computes
    (low frequencies at the bottom, 4 pixels per frame)."""
    import matplotlib
    log_mel = tokenizer.log_mel(torch.as_tensor(wave, dtype=torch.float32)).numpy().T
    if log_mel.shape[1] == 0:
        raise ValueError(f'{len(wave)} samples are shorter than one spectrogram frame')
    lo, hi = np.percentile(log_mel, [2, 99.5])
    scaled = np.clip((log_mel - lo) / max(hi - lo, 1e-6), 0, 1)[::-1]
    rgb = (matplotlib.colormaps['magma'](scaled)[..., :3] * 255).astype(np.uint8)
    reps = max(1, height // rgb.shape[0])
    return np.ascontiguousarray(rgb.repeat(reps, axis=0).repeat(4, axis=1))


def _is_rate(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_wave_tuple(item: Any) -> bool:
    """``(waveform, rate)``, or ``(rate, waveform)`` as Gradio's audio gives it."""
    return isinstance(item, tuple) and len(item) == 2 and any(
        isinstance(w, (np.ndarray, torch.Tensor, list)) and _is_rate(r)
        for w, r in (item, item[::-1]))


def _mono(wave: Any, what: str) -> np.ndarray:
    """(T,), (T, C) or (C, T) with at most 8 channels -> (T,) float32; integer
    PCM (e.g. int16) is scaled to [-1, 1]."""
    wave = np.asarray(wave)
    if np.issubdtype(wave.dtype, np.integer):
        wave = wave / float(np.iinfo(wave.dtype).max + 1)
    wave = wave.astype(np.float32)
    if wave.ndim == 2 and min(wave.shape) <= 8:
        wave = wave.mean(axis=int(np.argmin(wave.shape)))
    if wave.ndim != 1:
        raise ValueError(f'{what}: expected a mono (T,) waveform (or up to 8 channels), got '
                         f'shape {wave.shape}')
    if wave.size == 0:
        raise ValueError(f'{what} holds no samples')
    if not np.isfinite(wave).all():
        raise ValueError(f'{what} holds NaN or infinite samples')
    return wave


@INFERENCERS.register_module()
class ASRInferencer(_SequenceInferencer):
    """Speech recognition with a Zipper ASR model (``output='text',
    context='speech'``) or the ``VocabExpansionASR`` baseline.

    Inputs: speech files (any format soundfile reads), a folder of them,
    ``(waveform, sample_rate)`` tuples (or ``(sample_rate, waveform)``, as
    Gradio's audio input gives them), or bare 1-D waveforms at the model's
    rate (``sample_rate``). Integer PCM is scaled to [-1, 1], stereo is mixed
    to mono; another rate is resampled (``resample=False``: refused). Files are read with the
    ``LoadAudioFromFile`` transform the configs use.

    Predictions: ``{'text', 'duration_s'}``. Drawing: the log-mel spectrogram
    (4 pixels per 20 ms frame) with the transcript.

    Example::

        asr = ASRInferencer('zipper_asr_tiny_1xb16-1500it_synth-speech')
        asr('speech.wav')['predictions'][0]['text']
    """
    task_kind = 'speech recognition'
    model_types = ('Zipper', 'VocabExpansionASR')
    input_suffixes = AUDIO_SUFFIXES

    def __init__(self, model: ModelSpec, weights: Union[str, bool, None] = None,
                 device: str = 'cpu', cfg_options: Optional[dict] = None,
                 show_progress: bool = True, resample: bool = True,
                 compile: Union[bool, dict] = False) -> None:
        super().__init__(model, weights, device, cfg_options, show_progress, compile)
        if type(self.model).__name__ == 'Zipper':
            from mmfusion.models.zipper import check_zipper_task
            check_zipper_task(self.model, 'text', 'speech', f'{type(self).__name__}: the model')
        self.resample = resample
        self._warned_rates = set()
        self._waves: List[np.ndarray] = []

    @property
    def sample_rate(self) -> int:
        return int(self.model.unit_tokenizer.sample_rate)

    def _inputs_to_list(self, inputs: Any) -> list:
        if _is_wave_tuple(inputs) or isinstance(inputs, torch.Tensor):
            inputs = [inputs]
        return super()._inputs_to_list(inputs)

    def load(self, item: Any, index: int = 0) -> Tuple[np.ndarray, dict]:
        """One input as a mono float32 waveform at the model's rate, with its metainfo."""
        if isinstance(item, (str, Path)):
            from mmfusion.datasets.transforms import LoadAudioFromFile
            self._check_path(item)
            loaded = LoadAudioFromFile(sample_rate=self.sample_rate, strict=not self.resample)(
                dict(audio_path=str(item)))
            wave = _mono(loaded['audio'], f'audio file {item}')
            return wave, dict(audio_path=str(item), ori_sample_rate=loaded['ori_sample_rate'])
        if _is_wave_tuple(item):
            wave, rate = item if _is_rate(item[1]) else item[::-1]
        elif isinstance(item, (np.ndarray, torch.Tensor)):
            wave, rate = item, self.sample_rate
        else:
            raise TypeError(f'input {index}: expected an audio file path, a (waveform, '
                            f'sample_rate) tuple or a 1-D waveform array, got '
                            f'{type(item).__name__}')
        what = f'input {index} (waveform)'
        wave = _mono(wave.detach().cpu().numpy() if torch.is_tensor(wave) else wave, what)
        rate = int(rate)
        if rate <= 0:
            raise ValueError(f'{what}: sample rate must be positive, got {rate}')
        if rate != self.sample_rate:
            if not self.resample:
                raise ValueError(f'{what} has sample rate {rate} Hz; the model reads '
                                 f'{self.sample_rate} Hz (resample=True resamples)')
            if rate not in self._warned_rates:
                self._warned_rates.add(rate)
                print_log(f'{type(self).__name__}: resampling {rate} Hz input to '
                          f'{self.sample_rate} Hz', logger='current', level=30)
            from mmfusion.utils.dependency import require
            functional = require('torchaudio', 'ASRInferencer (resampling)').functional
            wave = functional.resample(torch.from_numpy(wave), rate, self.sample_rate).numpy()
        return np.ascontiguousarray(wave, dtype=np.float32), dict(ori_sample_rate=rate)

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs) -> Iterable[dict]:
        for item in inputs:  # missing files fail before any work
            self._check_path(item)
        self._waves = []
        offset = 0
        for chunk in self._batches(inputs, batch_size):
            waves, samples = [], []
            for i, item in enumerate(chunk, offset):
                wave, meta = self.load(item, i)
                waves.append(wave)
                samples.append(FusionDataSample(metainfo=dict(
                    meta, sample_rate=self.sample_rate, num_samples=len(wave))))
            offset += len(chunk)
            self._waves += waves
            yield dict(inputs=dict(audio=[torch.from_numpy(w) for w in waves]),
                       data_samples=samples)

    def visualize(self, inputs: list, preds: list, return_vis: bool = True,
                  **kwargs) -> Optional[list]:
        if not return_vis:
            return None
        return [self.visualize_one(wave, pred) for wave, pred in zip(self._waves, preds)]

    def visualize_one(self, inp: np.ndarray, pred: FusionDataSample, **kwargs) -> np.ndarray:
        """``inp``: the waveform the model read."""
        image = log_mel_image(np.asarray(inp), self.model.unit_tokenizer)
        return self.drawer().add_datasample('asr', image, pred, draw_gt=False)

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        return dict(text=str(pred.pred_text),
                    duration_s=pred.metainfo['num_samples'] / pred.metainfo['sample_rate'])


@INFERENCERS.register_module()
class TTSInferencer(_SequenceInferencer):
    """Speech synthesis with a Zipper TTS model (``output='speech',
    context='text'``).

    Inputs: texts, ``.txt`` files (one utterance each) or a folder of them.
    The model decodes speech units greedily; the units become a waveform at
    the unit tokenizer's rate by mel lookup and Griffin-Lim
    (``SpeechUnitTokenizer.units_to_wave``, ``frames_per_unit`` 20 ms frames
    per deduplicated unit).

    Predictions: ``{'text'`` (as the tokenizer normalised it), ``'units'``,
    ``'num_units'``, ``'sample_rate'}``. Drawing: the waveform (float32), or
    ``None`` with a warning when the model produced no units; ``out_dir``
    writes it as 16-bit ``vis/NAME.wav``.
    """
    task_kind = 'speech synthesis'
    model_types = ('Zipper', )
    input_suffixes = TEXT_SUFFIXES
    vis_suffix = '.wav'
    visualize_kwargs = {'return_vis', 'frames_per_unit'}

    def __init__(self, model: ModelSpec, weights: Union[str, bool, None] = None,
                 device: str = 'cpu', cfg_options: Optional[dict] = None,
                 show_progress: bool = True, compile: Union[bool, dict] = False) -> None:
        super().__init__(model, weights, device, cfg_options, show_progress, compile)
        from mmfusion.models.zipper import check_zipper_task
        check_zipper_task(self.model, 'speech', 'text', f'{type(self).__name__}: the model')

    @property
    def sample_rate(self) -> int:
        return int(self.model.unit_tokenizer.sample_rate)

    @staticmethod
    def _is_file(item: Any) -> bool:
        return isinstance(item, Path) or (isinstance(item, str) and (
            osp.isfile(item) or item.lower().endswith(TEXT_SUFFIXES)))

    def input_names(self, inputs: Sequence) -> List[str]:
        """``.txt`` files by their stem, texts by their position."""
        return FusionInferencer.input_names(
            [item if self._is_file(item) else i for i, item in enumerate(inputs)])

    def read_text(self, item: Any, index: int) -> str:
        if self._is_file(item):
            self._check_path(item)
            with open(str(item), encoding='utf-8') as f:
                text, what = f.read().strip(), f'text file {item}'
        elif isinstance(item, str):
            text, what = item, f'text {index}'
        else:
            raise TypeError(f'input {index}: expected a text or a .txt file, got '
                            f'{type(item).__name__}')
        if not self.model.text_tokenizer.normalise(text).strip():
            raise ValueError(f'{what} has nothing to speak ({text!r}); the tokenizer keeps '
                             'only its own alphabet')
        return text

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs) -> Iterable[dict]:
        texts = [self.read_text(item, i) for i, item in enumerate(inputs)]
        for chunk in self._batches(texts, batch_size):
            yield dict(inputs=dict(text=chunk),
                       data_samples=[FusionDataSample(metainfo=dict(text=t)) for t in chunk])

    def visualize(self, inputs: list, preds: list, return_vis: bool = True,
                  frames_per_unit: float = 2.0, **kwargs) -> Optional[list]:
        if not return_vis:
            return None
        if frames_per_unit <= 0:
            raise ValueError(f'frames_per_unit must be > 0, got {frames_per_unit}')
        return [self.visualize_one(inp, pred, frames_per_unit) for inp, pred in zip(inputs, preds)]

    def visualize_one(self, inp: Any, pred: FusionDataSample,
                      frames_per_unit: float = 2.0) -> Optional[np.ndarray]:
        units = pred.pred_units
        if units.numel() == 0:
            warnings.warn(f'the model produced no speech units for {pred.metainfo["text"]!r}: '
                          'no audio', stacklevel=2)
            return None
        wave = self.model.unit_tokenizer.units_to_wave(units.cpu(), frames_per_unit)
        return wave.numpy().astype(np.float32)

    def save_visualization(self, vis: np.ndarray, path: str) -> None:
        """A waveform as 16-bit PCM WAV at the model's rate."""
        import soundfile
        if osp.dirname(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
        soundfile.write(path, np.asarray(vis, dtype=np.float32), self.sample_rate,
                        subtype='PCM_16')

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        units = pred.pred_units.tolist()
        return dict(text=self.model.text_tokenizer.normalise(pred.metainfo['text']),
                    units=units, num_units=len(units), sample_rate=self.sample_rate)


# -- captioning with mmMamba ------------------------------------------------------------
@INFERENCERS.register_module()
class MambaCaptionInferencer(FusionInferencer):
    """Image captioning with the mmMamba teacher (``MultimodalCausalLM``,
    attention) or a distilled student (``MambaDistiller``: its Mamba-2
    student, linear or hybrid, captions).

    Images (paths, BGR arrays, ``skimage:NAME``, folders) go through the
    config's test pipeline, resized to the model's square input
    (``img_size``) unless the pipeline resizes; captions are decoded greedily
    as in evaluation (``MultimodalCausalLM.generate``).

    Predictions: ``{'caption'}``. Drawing: the image with the caption.
    """
    task_kind = 'image captioning (linear-time student)'
    model_types = ('MultimodalCausalLM', 'MambaDistiller')

    @property
    def captioner(self) -> nn.Module:
        """The network that captions: the student of a distiller."""
        return getattr(self.model, 'student', self.model)

    @property
    def architecture(self) -> str:
        """``'attention'`` (the teacher), ``'linear'`` (all Mamba-2) or ``'hybrid'``."""
        mamba = len(self.captioner.mamba_layers)
        return 'attention' if not mamba else \
            'linear' if mamba == len(self.captioner.layers) else 'hybrid'

    def _init_pipeline(self, cfg: Optional[Config]):
        from mmengine.dataset import Compose

        from .inference import build_test_pipeline
        pipeline = build_test_pipeline(cfg)
        transforms = list(pipeline.transforms)
        if not any('Resize' in type(t).__name__ for t in transforms):
            from mmfusion.registry import TRANSFORMS
            size = self.captioner.patch_embed.img_size
            resize = TRANSFORMS.build(dict(type='Resize', scale=(size, size), keep_ratio=False))
            packs = [i for i, t in enumerate(transforms) if 'Pack' in type(t).__name__]
            transforms.insert(packs[0] if packs else len(transforms), resize)
        return Compose(transforms)

    def visualize_one(self, inp: Any, pred: FusionDataSample, **kwargs) -> np.ndarray:
        return self.drawer().add_datasample('caption', read_rgb(inp), pred, draw_gt=False)

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        return dict(caption=str(pred.pred_caption))


# -- point clouds ------------------------------------------------------------------------
def point_saliency(saliency: torch.Tensor, pix: torch.Tensor, image_size: int) -> torch.Tensor:
    """(B, V, h, w) saliency maps and (B, V, N, 2) pixels -> (B, N) per-point
    saliency: each map upsampled bicubically to the view size, read at the
    point's pixel, averaged over the views."""
    from mmfusion.models.encoders.pointcloud.projection import gather_pixel_features
    B, V = saliency.shape[:2]
    maps = F.interpolate(saliency.flatten(0, 1)[:, None].float(), size=(image_size, image_size),
                         mode='bicubic', align_corners=False).unflatten(0, (B, V))
    return gather_pixel_features(maps, pix, image_size)[..., 0].mean(1)


def draw_point_panels(views: np.ndarray, points: np.ndarray, saliency: np.ndarray,
                      view_axes: Sequence[Sequence[int]], title: str) -> np.ndarray:
    """The V depth views and the saliency-coloured scatter (x across, z up)
    side by side, as an RGB uint8 image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = len(views) + 1
    fig = Figure(figsize=(4 * panels, 4.4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    for i, (ax, view) in enumerate(zip(axes, views)):
        row, col, depth = (AXIS_NAMES[a] for a in view_axes[i])
        ax.imshow(view, cmap='gray')
        ax.set_title(f'depth view {i + 1}: rows {row}, cols {col}, depth {depth}', fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[-1]
    order = np.argsort(saliency)  # the most salient points drawn last, on top
    sc = ax.scatter(points[order, 0], points[order, 2], c=saliency[order], s=6, cmap='viridis')
    ax.set_aspect('equal')
    ax.set_xlabel('x')
    ax.set_ylabel('z')
    ax.set_title('points (x, z) by 2D saliency (mean of views)', fontsize=10)
    fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


@INFERENCERS.register_module()
class PointCloudZeroShotInferencer(_SequenceInferencer):
    """Zero-shot point-cloud classification by free-form class names with a
    ``PointCLIPAligner`` (the I2P-MAE zero-shot recipes).

    Inputs: point files (``.npy .txt .xyz .ply``; meshes ``.off .obj .stl``
    are sampled on their surface, as many points as the model's
    preprocessor keeps), a folder of them, or ``(N, C >= 3)`` arrays (x, y,
    z first; further columns are ignored). Clouds are normalised to the unit
    sphere and resampled by the model's preprocessor (deterministic in
    evaluation), then each of ``texts`` (a list, or one comma-separated
    string; default: the model's ``classes``) is embedded with the model's
    prompt templates and scored (softmax over the names).

    Predictions: ``{'ranking': [{'label', 'score'}, ...] (most likely first),
    'label', 'score', 'num_points'}`` (``num_points``: the points read, before
    resampling). Drawing: the teacher's depth views and the model's input
    points coloured by the teacher's saliency, titled with the ``top_k``
    classes. With ``return_datasamples=True`` a sample also holds ``points``
    (the model's input cloud), and after drawing ``views`` and ``saliency``.

    Args:
        num_points: points the model sees (overrides the preprocessor's).
    """
    task_kind = 'zero-shot point-cloud classification'
    model_types = ('PointCLIPAligner', )
    input_suffixes = POINT_SUFFIXES
    forward_kwargs = {'texts'}
    visualize_kwargs = {'return_vis', 'top_k'}

    def __init__(self, model: ModelSpec, weights: Union[str, bool, None] = None,
                 device: str = 'cpu', cfg_options: Optional[dict] = None,
                 show_progress: bool = True, num_points: Optional[int] = None,
                 compile: Union[bool, dict] = False) -> None:
        super().__init__(model, weights, device, cfg_options, show_progress, compile)
        pre = getattr(self.model.data_preprocessor, 'preprocessors', None)
        if pre is None or 'points' not in pre:
            raise ValueError(f'{type(self).__name__}: the model\'s data_preprocessor '
                             f'({type(self.model.data_preprocessor).__name__}) has no `points` '
                             'preprocessor; expected MultiModalDataPreprocessor('
                             'points=PointDataPreprocessor(...))')
        self.points_preprocessor = pre['points']
        if num_points is not None:
            if num_points < 1:
                raise ValueError(f'num_points must be >= 1, got {num_points}')
            self.points_preprocessor.num_points = int(num_points)

    @property
    def num_points(self) -> Optional[int]:
        return self.points_preprocessor.num_points

    def class_names(self, texts: Union[str, Sequence[str], None]) -> List[str]:
        """``texts`` as a checked list (default: the model's classes)."""
        if texts is None:
            texts = getattr(self.model, 'classes', None) or \
                (getattr(self.model, 'dataset_meta', None) or {}).get('classes')
            if not texts:
                raise ValueError(f'{type(self).__name__} needs class names: pass texts=[...] '
                                 '(the model has no `classes` of its own)')
        if isinstance(texts, str):
            texts = texts.split(',')
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f'texts must be class names (a list of str or one comma-separated '
                            f'str), got {texts!r}')
        names = [t.strip() for t in texts]
        if any(not n for n in names) or len(names) < 2:
            raise ValueError(f'texts needs at least 2 non-empty class names to rank, got '
                             f'{list(texts)!r}')
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f'texts names {repeated} more than once; give each class once')
        return names

    def __call__(self, inputs: Any, return_datasamples: bool = False, batch_size: int = 1,
                 texts: Union[str, Sequence[str], None] = None, **kwargs) -> dict:
        return super().__call__(inputs, return_datasamples=return_datasamples,
                                batch_size=batch_size, texts=self.class_names(texts), **kwargs)

    def load(self, item: Any, index: int = 0) -> Tuple[np.ndarray, dict]:
        """One input as an (N, 3) float32 cloud, with its metainfo."""
        if isinstance(item, (str, Path)):
            from mmfusion.datasets.transforms import LoadPointsFromFile
            self._check_path(item)
            loader = LoadPointsFromFile(use_dims=[0, 1, 2], mesh_samples=self.num_points or 2048)
            cloud = loader(dict(points_path=str(item)))['points']  # errors name the file
            kind = 'mesh' if osp.splitext(str(item))[1].lower() in MESH_SUFFIXES else 'points'
            return cloud, dict(points_path=str(item), source=kind)
        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().numpy()
        if not isinstance(item, np.ndarray):
            raise TypeError(f'input {index}: expected a point file path or an (N, 3+) array, '
                            f'got {type(item).__name__}')
        if item.ndim != 2 or item.shape[1] < 3:
            raise ValueError(f'input {index}: expected an (N, 3+) point array (x, y, z first), '
                             f'got shape {item.shape}')
        if item.shape[0] == 0:
            raise ValueError(f'input {index}: the point cloud is empty (0 points)')
        cloud = np.ascontiguousarray(item[:, :3], dtype=np.float32)
        if not np.isfinite(cloud).all():
            raise ValueError(f'input {index}: the point cloud holds NaN or infinite coordinates')
        return cloud, dict(source='array')

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs) -> Iterable[dict]:
        for item in inputs:
            self._check_path(item)
        offset = 0
        for chunk in self._batches(inputs, batch_size):
            clouds, samples = [], []
            for i, item in enumerate(chunk, offset):
                cloud, meta = self.load(item, i)
                clouds.append(torch.from_numpy(cloud))
                samples.append(FusionDataSample(metainfo=dict(meta, num_points=len(cloud))))
            offset += len(chunk)
            yield dict(inputs=dict(points=clouds), data_samples=samples)

    @torch.no_grad()
    def forward(self, inputs: dict, texts: Sequence[str] = (), **kwargs) -> list:
        batch = self.model.data_preprocessor(inputs, False)
        points = batch['inputs']['points']
        lengths = batch['inputs'].get('points_lengths')
        samples = self.model.predict(batch['inputs'], batch['data_samples'], classes=list(texts))
        for i, sample in enumerate(samples):
            n = int(lengths[i]) if lengths is not None else points.shape[1]
            sample.points = points[i, :n, :3].float().cpu()
            sample.set_metainfo(dict(classes=list(texts)))
        return samples

    def ranking(self, pred: FusionDataSample) -> List[Tuple[str, float]]:
        """``[(name, score), ...]``, most likely first (ties in the given order)."""
        scores = pred.pred_score.float().cpu().numpy()
        names = pred.metainfo['classes']
        return [(names[i], float(scores[i])) for i in np.argsort(-scores, kind='stable')]

    @torch.no_grad()
    def explain(self, pred: FusionDataSample) -> Dict[str, np.ndarray]:
        """The teacher's depth views (V, S, S) of the sample's input cloud and
        the per-point saliency (N,) (:func:`point_saliency`)."""
        teacher = self.model.teacher
        points = pred.points[None].to(next(self.model.parameters()).device)
        out = teacher(points, None)
        saliency = point_saliency(out['saliency'], out['pix'], teacher.image_size)
        return dict(views=out['views'][0].float().cpu().numpy(),
                    saliency=saliency[0].float().cpu().numpy())

    def visualize_one(self, inp: Any, pred: FusionDataSample, top_k: int = 3,
                      **kwargs) -> np.ndarray:
        if top_k < 1:
            raise ValueError(f'top_k must be >= 1, got {top_k}')
        drawn = self.explain(pred)
        pred.views, pred.saliency = drawn['views'], drawn['saliency']
        name = osp.basename(str(inp)) if isinstance(inp, (str, Path)) else 'point cloud'
        best = ', '.join(f'{label} ({score:.1%})' for label, score in self.ranking(pred)[:top_k])
        return draw_point_panels(drawn['views'], pred.points.numpy(), drawn['saliency'],
                                 self.model.teacher.views, f'{name}: {best}')

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        ranking = self.ranking(pred)
        return dict(ranking=[dict(label=n, score=s) for n, s in ranking],
                    label=ranking[0][0], score=ranking[0][1],
                    num_points=int(pred.metainfo['num_points']))
