"""Inferencers of the image families.

* :class:`OpenVocabSegInferencer`: X-Decoder and FrozenSeg: images + class
  names -> semantic, instance or panoptic segments; drawing: the segments
  coloured by class with their names.
* :class:`ReferringSegInferencer`, :class:`CaptionInferencer`,
  :class:`RetrievalInferencer`: X-Decoder's language branches (a sentence ->
  its mask; a caption; candidate sentences ranked).
* :class:`PromptableSegInferencer`: SAM / MedSAM: boxes and points -> masks,
  or every mask of the image.
* :class:`MattingInferencer`: SEMat: image + box -> alpha matte and a
  composite over a new background (the matte written as ``alpha/NAME.png``).
* :class:`MedicalSegInferencer`: GMS: image -> foreground mask and overlay.

Predictions are JSON-ready dicts (masks as COCO RLE, see
:func:`~mmfusion.apis.base_inferencer.mask_to_rle`); drawings are RGB arrays
at each image's size. Configs given as files (or :class:`Config`) lose the
weight files they name for their parts (pre-trained towers) when those are not
on this machine, with a warning: a trained checkpoint holds every weight.
"""
import os
import os.path as osp
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import cv2
import mmcv
import numpy as np
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures.mask import mask2bbox
from mmengine.structures import PixelData

from mmfusion.registry import INFERENCERS
from mmfusion.structures import FusionDataSample
from mmfusion.structures.prompt_sampling import build_prompts

from .base_inferencer import FusionInferencer, ModelSpec, mask_to_rle, read_rgb, to_numpy
from .inference import load_image, prepare_inputs

SEG_TASKS = ('semantic', 'instance', 'panoptic')
Texts = Union[str, Sequence[str], Sequence[Sequence[str]], None]


def per_image_lists(texts: Texts, num_images: int, what: str, task: str) -> List[List[str]]:
    """A shared list of strings or one list per image -> one checked list per image."""
    usage = (f'texts for task {task!r} must be a list of {what} shared by all images '
             f'or a list of such lists, one per image')
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f'{usage}; got {type(texts).__name__} {texts!r}')
    texts = list(texts)
    if texts and all(isinstance(t, (list, tuple)) for t in texts):
        if len(texts) != num_images:
            raise ValueError(f'{usage}: got {len(texts)} lists for {num_images} images')
        lists = [list(t) for t in texts]
    elif all(isinstance(t, str) for t in texts):
        lists = [texts] * num_images
    else:
        raise ValueError(f'{usage}; got a mix of strings and lists: {texts!r}')
    for i, names in enumerate(lists):
        if not names:
            raise ValueError(f'{usage}; the list for image {i} is empty')
        bad = [t for t in names if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f'{what} must be non-empty strings; image {i} has {bad!r}')
        if len(set(names)) != len(names):
            raise ValueError(f'{what} of image {i} repeat a name: {names!r}')
    return lists


def _mask_entry(mask: np.ndarray) -> dict:
    return dict(area=int(mask.sum()), mask=mask_to_rle(mask))


class _ImageInferencer(FusionInferencer):
    """Images through the config's test pipeline, per-image metainfo set by
    :meth:`metainfo`, drawn by one :class:`FusionVisualizer` of its own."""
    visualize_kwargs = {'return_vis', 'alpha'}

    def metainfo(self, num_images: int, **kwargs) -> List[dict]:
        """Per image the metainfo the model's ``predict`` reads."""
        return [{} for _ in range(num_images)]

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs) -> Iterable[dict]:
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        for item in inputs:  # missing files and bad texts fail before any work
            self._check_path(item)
        metas = self.metainfo(len(inputs), **kwargs)
        for start in range(0, len(inputs), batch_size):
            batch = prepare_inputs(inputs[start:start + batch_size], self.pipeline)
            for i, (packed, meta) in enumerate(zip(batch, metas[start:start + batch_size]),
                                               start):
                packed['data_samples'].set_metainfo(meta)
                self.prepare_sample(packed['data_samples'], inputs[i], i)
            yield self.collate_fn(batch)

    def prepare_sample(self, sample: FusionDataSample, item: Any, index: int) -> None:
        """Per-sample work after the pipeline (prompts at the input scale...)."""

    @staticmethod
    def describe_input(item: Any, index: int) -> str:
        """How errors name an input: its path, else its index."""
        return str(item) if isinstance(item, (str, Path)) else f'input {index}'

    def _draw(self, name: str, inp: Any, pred: FusionDataSample, fields: Sequence[str],
              alpha: float = 0.5, score_thr: float = 0.3) -> np.ndarray:
        """``pred``'s ``fields`` (and metainfo) over the RGB input."""
        view = FusionDataSample(metainfo=pred.metainfo)
        for key in fields:
            if key in pred:
                setattr(view, key, getattr(pred, key))
        return self.drawer(alpha).add_datasample(name, read_rgb(inp), view, draw_gt=False,
                                                 pred_score_thr=score_thr)


class _XDecoderTaskInferencer(_ImageInferencer):
    """One task of an X-Decoder (or FrozenSeg) ``predict(..., task=...)``."""
    model_types = ('XDecoder', )
    #: the task ``predict`` runs (:class:`OpenVocabSegInferencer`: the ``task`` kwarg)
    task: str = ''

    def __init__(self, model: ModelSpec, weights: Union[str, bool, None] = None,
                 device: str = 'cpu', cfg_options: Optional[dict] = None,
                 show_progress: bool = True, compile: Union[bool, dict] = False) -> None:
        super().__init__(model, weights, device, cfg_options, show_progress, compile)
        tasks = getattr(self.model, 'tasks', ())
        if self.task and self.task not in tasks:
            raise ValueError(f'{type(self).__name__}: this {type(self.model).__name__} has no '
                             f'{self.task} branch; it predicts {", ".join(tasks)}')

    def check_task(self, task: Optional[str]) -> str:
        """The task this call runs."""
        return self.task

    @torch.no_grad()
    def forward(self, inputs: dict, **kwargs) -> list:
        data = self.model.data_preprocessor(inputs, False)
        return self.model.predict(data['inputs'], data['data_samples'], task=self._run_task)

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs) -> Iterable[dict]:
        self._run_task = self.check_task(kwargs.pop('task', None))
        yield from super().preprocess(inputs, batch_size, **kwargs)


@INFERENCERS.register_module()
class OpenVocabSegInferencer(_XDecoderTaskInferencer):
    """Open-vocabulary segmentation with an X-Decoder or a FrozenSeg: each
    image is segmented into the class names it is given.

    Call kwargs:
        task: ``'semantic'``, ``'instance'`` or ``'panoptic'`` (default: the
            model's ``test_cfg`` task).
        texts: class names, one list shared by all images or one list per
            image (default: the model's classes). A name the model knows as
            stuff stays stuff (one segment per class in panoptic); any other
            name is a thing.
        score_thr: lowest instance score drawn (instance task).
        alpha: mask opacity of the drawing.

    Predictions: ``{'task', 'classes', 'height', 'width', ...}`` with
    ``segments`` (semantic: one per class present, ``{'label', 'class',
    'area', 'mask'}``; panoptic: ``{'id', 'label', 'class', 'isthing',
    'area', 'mask'}``, ``id = label + instance * INSTANCE_OFFSET``) or
    ``instances`` (``{'label', 'class', 'score', 'bbox', 'area', 'mask'}``,
    in the model's order, all of them). Masks are COCO RLE.

    Example::

        seg = OpenVocabSegInferencer('configs/xdecoder/xdecoder_r18-tiny_2xb8-2300it_'
                                     'synthshapes.py', weights=False)
        out = seg('skimage:astronaut', texts=['person', 'sky', 'rocket'])
        out['visualization'][0]  # RGB overlay with the class names
    """
    task_kind = 'open-vocabulary segmentation'
    model_types = ('XDecoder', 'FrozenSeg')
    preprocess_kwargs = {'task', 'texts'}
    visualize_kwargs = {'return_vis', 'alpha', 'score_thr'}
    FIELDS = dict(semantic='pred_sem_seg', instance='pred_instances',
                  panoptic='pred_panoptic_seg')

    def check_task(self, task: Optional[str]) -> str:
        task = task or self.model.default_task
        if task not in SEG_TASKS:
            raise ValueError(f'unknown task {task!r}; {type(self).__name__} runs one of '
                             f'{SEG_TASKS}')
        return task

    def default_classes(self) -> Optional[List[str]]:
        """The model's own class names (config ``classes`` or the
        checkpoint's ``dataset_meta``), used when no texts are given."""
        classes = getattr(self.model, 'classes', None) or \
            (getattr(self.model, 'dataset_meta', None) or {}).get('classes')
        return list(classes) if classes else None

    def known_stuff(self) -> set:
        """Names the model knows as stuff (one merged segment per class)."""
        meta = getattr(self.model, 'dataset_meta', None) or {}
        things = getattr(self.model, 'thing_classes', None)
        if things is None:
            things = meta.get('thing_classes')
        if things is None:
            return set()
        return set(self.default_classes() or ()) - set(things)

    def metainfo(self, num_images: int, texts: Texts = None, task: str = 'semantic',
                 **kwargs) -> List[dict]:
        if texts is None:
            classes = self.default_classes()
            if classes is None:
                raise ValueError(f'task {task!r} needs class names: pass texts=[...] '
                                 '(the model has no default classes)')
            lists = [classes] * num_images
        else:
            lists = per_image_lists(texts, num_images, 'class names', task)
        stuff = self.known_stuff()
        return [dict(classes=list(c), thing_classes=[n for n in c if n not in stuff])
                for c in lists]

    def preprocess(self, inputs: list, batch_size: int = 1, task: Optional[str] = None,
                   texts: Texts = None, **kwargs) -> Iterable[dict]:
        task = self.check_task(task)
        self._run_task = task
        yield from _ImageInferencer.preprocess(self, inputs, batch_size, texts=texts, task=task)

    def task_of(self, pred: FusionDataSample) -> str:
        for task, field in self.FIELDS.items():
            if field in pred:
                return task
        raise ValueError('the sample holds no segmentation prediction '
                         f'({", ".join(self.FIELDS.values())})')

    def visualize_one(self, inp: Any, pred: FusionDataSample, alpha: float = 0.5,
                      score_thr: float = 0.3, **kwargs) -> np.ndarray:
        task = self.task_of(pred)
        return self._draw(task, inp, pred, (self.FIELDS[task], ), alpha, score_thr)

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        task = self.task_of(pred)
        classes = list(pred.metainfo['classes'])
        things = set(pred.metainfo.get('thing_classes', classes))

        def name(label: int) -> str:
            return classes[label] if 0 <= label < len(classes) else str(label)

        out: Dict[str, Any] = dict(task=task, classes=classes)
        if task == 'semantic':
            seg = to_numpy(pred.pred_sem_seg.data)[0]
            out.update(height=seg.shape[0], width=seg.shape[1], segments=[
                dict(label=int(label), **{'class': name(int(label))}, **_mask_entry(seg == label))
                for label in np.unique(seg)])
        elif task == 'panoptic':
            pan = to_numpy(pred.pred_panoptic_seg.sem_seg)[0]
            segments = []
            for seg_id in np.unique(pan):
                label = int(seg_id) % INSTANCE_OFFSET
                if label >= len(classes):  # void
                    continue
                segments.append(dict(id=int(seg_id), label=label, **{'class': name(label)},
                                     isthing=name(label) in things,
                                     **_mask_entry(pan == seg_id)))
            out.update(height=pan.shape[0], width=pan.shape[1], segments=segments)
        else:
            inst = pred.pred_instances
            masks = to_numpy(inst.masks).astype(bool)
            labels, scores = to_numpy(inst.labels), to_numpy(inst.scores)
            bboxes = to_numpy(inst.bboxes)
            h, w = (masks.shape[1:] if len(masks) else pred.metainfo['ori_shape'][:2])
            out.update(height=int(h), width=int(w), instances=[
                dict(label=int(labels[k]), **{'class': name(int(labels[k]))},
                     score=float(scores[k]), bbox=[float(v) for v in bboxes[k]],
                     **_mask_entry(masks[k]))
                for k in range(len(masks))])
        return out

    @staticmethod
    def describe(pred: dict, score_thr: float = 0.3) -> str:
        """A one-paragraph text summary of a prediction dict."""
        total = max(pred['height'] * pred['width'], 1)
        if pred['task'] == 'semantic':
            found = [f'{s["class"]} {s["area"] / total:.1%}'
                     for s in sorted(pred['segments'], key=lambda s: -s['area'])]
            return (f'semantic: {len(found)} of {len(pred["classes"])} classes found: '
                    + ', '.join(found))
        if pred['task'] == 'panoptic':
            parts, counted = [], {}
            for s in sorted(pred['segments'], key=lambda s: -s['area']):
                counted[s['class']] = counted.get(s['class'], 0) + 1
                text = s['class'] + (f' #{counted[s["class"]]}' if s['isthing'] else '')
                parts.append(f'{text} {s["area"] / total:.1%}')
            void = 1 - sum(s['area'] for s in pred['segments']) / total
            if void > 0:
                parts.append(f'void {void:.1%}')
            return f'panoptic: {len(pred["segments"])} segments: ' + ', '.join(parts)
        kept = sorted((i for i in pred['instances'] if i['score'] >= score_thr),
                      key=lambda i: -i['score'])
        parts = [f'{i["class"]} {i["score"]:.2f} ({i["area"] / total:.1%})' for i in kept]
        return (f'instance: {len(parts)} instances with score >= {score_thr}'
                + (': ' + ', '.join(parts) if parts else ''))


@INFERENCERS.register_module()
class ReferringSegInferencer(_XDecoderTaskInferencer):
    """Referring segmentation with an X-Decoder: the region a sentence names.

    Call kwargs:
        text: one sentence for all images, or a list with one per image.
        alpha: mask opacity of the drawing.

    Predictions: ``{'text', 'height', 'width', 'area', 'mask'}`` (COCO RLE).
    Drawing: the mask with the sentence.
    """
    task_kind = 'referring segmentation'
    task = 'referring'
    preprocess_kwargs = {'text'}

    def metainfo(self, num_images: int, text: Union[str, Sequence[str], None] = None,
                 **kwargs) -> List[dict]:
        if isinstance(text, str):
            sentences = [text] * num_images
        elif isinstance(text, Sequence) and text and all(isinstance(t, str) for t in text):
            sentences = list(text)
        else:
            raise ValueError('task "referring" needs text: one sentence (str) for all images '
                             f'or a list of sentences, one per image; got {text!r}')
        if len(sentences) != num_images:
            raise ValueError(f'task "referring" needs one sentence per image: got '
                             f'{len(sentences)} sentences for {num_images} images')
        for i, sentence in enumerate(sentences):
            if not sentence.strip():
                raise ValueError(f'the referring sentence for image {i} is empty')
        return [dict(text=s) for s in sentences]

    def visualize_one(self, inp: Any, pred: FusionDataSample, alpha: float = 0.5,
                      **kwargs) -> np.ndarray:
        return self._draw('referring', inp, pred, ('pred_sem_seg', ), alpha)

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        mask = to_numpy(pred.pred_sem_seg.data)[0].astype(bool)
        return dict(text=pred.metainfo['text'], height=mask.shape[0], width=mask.shape[1],
                    **_mask_entry(mask))

    @staticmethod
    def describe(pred: dict) -> str:
        share = pred['area'] / max(pred['height'] * pred['width'], 1)
        return f'referring "{pred["text"]}": the mask covers {share:.1%} of the image'


@INFERENCERS.register_module()
class CaptionInferencer(_XDecoderTaskInferencer):
    """Image captioning with an X-Decoder (greedy decoding).

    Predictions: ``{'caption'}``. Drawing: the image with its caption.
    """
    task_kind = 'image captioning'
    task = 'caption'

    def visualize_one(self, inp: Any, pred: FusionDataSample, **kwargs) -> np.ndarray:
        return self._draw('caption', inp, pred, ('pred_caption', ))

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        return dict(caption=str(pred.pred_caption))

    @staticmethod
    def describe(pred: dict) -> str:
        return f'caption: {pred["caption"]}'


@INFERENCERS.register_module()
class RetrievalInferencer(_XDecoderTaskInferencer):
    """Image-text retrieval with an X-Decoder: candidate sentences ranked by
    their match with each image (softmax over the candidates).

    Call kwargs:
        texts: candidate sentences, one list shared by all images or one list
            per image.

    Predictions: ``{'texts', 'scores', 'ranking', 'best'}`` (``scores`` in
    the order of ``texts``; ``ranking``: indices into ``texts``, best first;
    ``best``: the best sentence). Drawing: the ranked candidates.
    """
    task_kind = 'image-text retrieval'
    task = 'retrieval'
    preprocess_kwargs = {'texts'}

    def metainfo(self, num_images: int, texts: Texts = None, **kwargs) -> List[dict]:
        if texts is None:
            raise ValueError('task "retrieval" needs texts: a list of candidate sentences '
                             '(shared) or one list per image')
        lists = per_image_lists(texts, num_images, 'candidate sentences', 'retrieval')
        return [dict(texts=list(c)) for c in lists]

    def visualize_one(self, inp: Any, pred: FusionDataSample, **kwargs) -> np.ndarray:
        return self._draw('retrieval', inp, pred, ('pred_retrieval_scores', ))

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        scores = to_numpy(pred.pred_retrieval_scores).astype(float)
        texts = list(pred.metainfo['texts'])
        ranking = [int(k) for k in np.argsort(-scores, kind='stable')]
        return dict(texts=texts, scores=[float(v) for v in scores], ranking=ranking,
                    best=texts[ranking[0]])

    @staticmethod
    def describe(pred: dict) -> str:
        lines = [f'{rank}. {pred["scores"][k]:.3f}  {pred["texts"][k]}'
                 for rank, k in enumerate(pred['ranking'], 1)]
        return 'retrieval (softmax over the candidates):\n' + '\n'.join(lines)


def _prompt_lists(value: Any, num_images: int, width: int, name: str
                  ) -> List[Optional[np.ndarray]]:
    """Prompts shared by all images (one ``(width,)`` item or an ``(N, width)``
    list) or one such list per image -> one ``(N, width)`` array (or None) per
    image. ``width`` 0: scalars (point labels)."""
    if value is None:
        return [None] * num_images

    def as_items(v: Any, where: str) -> np.ndarray:
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f'{name}{where}: expected numbers, got {v!r}')
        if width == 0:
            if arr.ndim > 1:
                raise ValueError(f'{name}{where}: expected a list of labels, got shape '
                                 f'{arr.shape}')
            return arr.reshape(-1)
        if arr.ndim == 1 and arr.shape[0] == width:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != width or not len(arr):
            raise ValueError(f'{name}{where}: expected {width} numbers per item (one item or a '
                             f'list of them), got {v!r}')
        return arr

    def depth(v: Any) -> int:
        if isinstance(v, (list, tuple, np.ndarray)):
            return 1 + max([depth(x) for x in v if x is not None] or [0])
        return 0

    shared_depth = 1 if width == 0 else 2
    is_list = isinstance(value, (list, tuple, np.ndarray))
    if is_list and (depth(value) > shared_depth or any(v is None for v in value)):
        if len(value) != num_images:
            raise ValueError(f'{name}: got {len(value)} per-image lists for {num_images} images')
        return [as_items(v, f' of image {i}') if v is not None and len(v) else None
                for i, v in enumerate(value)]
    return [as_items(value, '')] * num_images


@INFERENCERS.register_module()
class PromptableSegInferencer(_ImageInferencer):
    """Promptable segmentation with a SAM (or MedSAM): masks from boxes and/or
    points, or every mask of the image (``auto=True``, segment_anything's
    automatic mask generator with the model's ``test_cfg.auto_cfg``).

    Call kwargs (coordinates in the image's pixels; each shared by all
    images, or a list with one entry per image):
        boxes: ``[x1, y1, x2, y2]`` or a list of them: one object per box.
        points: ``[x, y]`` or a list of them; without boxes, all points
            prompt one object; with boxes, every box gets all points.
        labels: per point 1 (foreground, the default) or 0 (background).
        auto: all masks of the image (takes no boxes or points).
        auto_cfg: overrides of ``test_cfg.auto_cfg`` for this call.
        alpha: mask opacity of the drawing.

    Predictions: ``{'mode', 'height', 'width', 'prompts', 'masks'}``,
    ``masks`` a list of ``{'score', 'bbox', 'area', 'mask'}`` (``score``:
    SAM's predicted IoU; ``mask``: COCO RLE). Drawing: the masks and the
    prompts (boxes in white, points green / red).
    """
    task_kind = 'promptable segmentation'
    model_types = ('SAM', )
    preprocess_kwargs = {'boxes', 'points', 'labels', 'auto'}
    forward_kwargs = {'auto_cfg'}

    def preprocess(self, inputs: list, batch_size: int = 1, boxes: Any = None,
                   points: Any = None, labels: Any = None, auto: bool = False,
                   **kwargs) -> Iterable[dict]:
        n = len(inputs)
        if auto:
            if boxes is not None or points is not None or labels is not None:
                raise ValueError('auto=True segments everything; it takes no boxes, points or '
                                 'labels')
            self._prompts = None
        else:
            box_lists = _prompt_lists(boxes, n, 4, 'boxes')
            point_lists = _prompt_lists(points, n, 2, 'points')
            label_lists = _prompt_lists(labels, n, 0, 'labels')
            self._prompts = []
            for i in range(n):
                if box_lists[i] is None and point_lists[i] is None:
                    raise ValueError(f'{self.describe_input(inputs[i], i)}: no prompt; give '
                                     'boxes=..., points=... or auto=True')
                if label_lists[i] is not None and point_lists[i] is None:
                    raise ValueError(f'{self.describe_input(inputs[i], i)}: labels without '
                                     'points')
                self._prompts.append((box_lists[i], point_lists[i], label_lists[i]))
        self._auto = bool(auto)
        yield from super().preprocess(inputs, batch_size)

    def prepare_sample(self, sample: FusionDataSample, item: Any, index: int) -> None:
        if self._prompts is None:
            return
        boxes, points, labels = self._prompts[index]
        h, w = sample.metainfo['ori_shape'][:2]
        name = self.describe_input(item, index)
        outside = [b.tolist() for b in (boxes if boxes is not None else [])
                   if b.min() < 0 or b[2] > w or b[3] > h]
        outside += [p.tolist() for p in (points if points is not None else [])
                    if not (0 <= p[0] < w and 0 <= p[1] < h)]
        if outside:
            raise ValueError(f'{name}: prompts {outside} lie outside the {w}x{h} image '
                             '(x1 y1 x2 y2 / x y, pixels)')
        if labels is not None:
            if not np.all(labels == np.round(labels)):
                raise ValueError(f'{name}: point labels must be 1 (foreground) or 0 '
                                 f'(background), got {labels.tolist()}')
            labels = labels.astype(int).tolist()
        try:
            sample.prompts = build_prompts(boxes.tolist() if boxes is not None else None,
                                           points.tolist() if points is not None else None,
                                           labels, sample.metainfo.get('scale_factor',
                                                                       (1.0, 1.0)))
        except ValueError as e:
            raise ValueError(f'{name}: {e}') from None
        sample.set_metainfo(dict(user_prompts=dict(
            boxes=boxes.tolist() if boxes is not None else [],
            points=points.tolist() if points is not None else [],
            labels=labels if labels is not None else
            ([1] * len(points) if points is not None else []))))

    @torch.no_grad()
    def forward(self, inputs: dict, auto_cfg: Optional[dict] = None, **kwargs) -> list:
        test_cfg = self.model.test_cfg
        saved = dict(mode=test_cfg['mode'], auto_cfg=test_cfg['auto_cfg'])
        test_cfg['mode'] = 'auto' if self._auto else 'prompt'
        if auto_cfg:
            test_cfg['auto_cfg'] = {**test_cfg['auto_cfg'], **auto_cfg}
        try:
            samples = self.model.test_step(inputs)
        finally:
            test_cfg.update(saved)
        for sample in samples:
            sample.set_metainfo(dict(mode='auto' if self._auto else 'prompt'))
        return samples

    def visualize_one(self, inp: Any, pred: FusionDataSample, alpha: float = 0.5,
                      **kwargs) -> np.ndarray:
        return self._draw('sam', inp, pred, ('pred_instances', 'prompts'), alpha, 0.0)

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        inst = pred.pred_instances
        masks = inst.masks.detach().cpu().bool()
        h, w = pred.metainfo['ori_shape'][:2]
        bboxes = to_numpy(inst.bboxes) if 'bboxes' in inst else to_numpy(mask2bbox(masks))
        scores = to_numpy(inst.scores).astype(float)
        masks = masks.numpy()
        return dict(mode=pred.metainfo['mode'], height=int(h), width=int(w),
                    prompts=pred.metainfo.get('user_prompts'),
                    masks=[dict(score=float(scores[k]), bbox=[float(v) for v in bboxes[k]],
                                **_mask_entry(masks[k])) for k in range(len(masks))])

    @staticmethod
    def describe(pred: dict) -> str:
        return (f'{len(pred["masks"])} masks; predicted IoU: '
                + ', '.join(f'{m["score"]:.2f}' for m in pred['masks']))


def checkerboard(h: int, w: int, cell: int = 16) -> np.ndarray:
    """A grey checkerboard (RGB uint8), the usual backdrop of a cut-out."""
    ys, xs = np.mgrid[:h, :w]
    board = ((ys // cell + xs // cell) % 2).astype(np.uint8) * 80 + 120
    return np.repeat(board[..., None], 3, axis=2)


def composite(image: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``alpha * image + (1 - alpha) * background`` as uint8 (alpha in [0, 1])."""
    a = np.asarray(alpha, dtype=np.float32)[..., None]
    out = a * image.astype(np.float32) + (1 - a) * background.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def alpha_to_uint8(alpha: Any) -> np.ndarray:
    """An alpha matte in [0, 1] as the 8-bit image written to PNG."""
    return np.round(np.clip(to_numpy(alpha), 0, 1) * 255).astype(np.uint8)


@INFERENCERS.register_module()
class MattingInferencer(_ImageInferencer):
    """Box-prompted matting with a SEMat: each image and a box around the
    object -> its alpha matte, composited over a new background.

    Call kwargs:
        box: ``[x1, y1, x2, y2]`` (image pixels) for all images, or one box
            per image.
        sam_mask: also run the frozen SAM alone on the box (its binary mask,
            for comparison).
        background: what the drawing composites over: ``None`` a grey
            checkerboard, an ``(R, G, B)`` colour, or an image (path,
            ``skimage:NAME``, or BGR array; resized to each image).

    Predictions: ``{'box', 'height', 'width', 'alpha_mean_inside_box',
    'alpha_mean_outside_box', 'fractional_share'}`` (share of pixels with
    0.05 < alpha < 0.95), with ``sam_mask`` also ``'sam_mask'`` (COCO RLE).
    The matte itself is an image, not JSON: ``return_datasamples=True`` gives
    it as ``pred_alpha`` (and ``pred_sam_mask``), and with ``out_dir`` it is
    written as ``alpha/NAME.png`` (8-bit; ``sam_mask/NAME.png`` likewise),
    named in the prediction as ``alpha_png``. Drawing: the composite.
    """
    task_kind = 'matting'
    model_types = ('SEMat', )
    preprocess_kwargs = {'box'}
    forward_kwargs = {'sam_mask'}
    visualize_kwargs = {'return_vis', 'background'}

    def metainfo(self, num_images: int, box: Any = None, **kwargs) -> List[dict]:
        if box is None:
            raise ValueError('matting needs box=[x1, y1, x2, y2] (image pixels) around the '
                             'object, or one box per image')
        try:
            boxes = np.asarray(box, dtype=np.float64)
        except (TypeError, ValueError):
            boxes = None
        if boxes is not None and boxes.shape == (4, ):
            boxes = np.repeat(boxes[None], num_images, axis=0)
        if boxes is None or boxes.shape != (num_images, 4):
            raise ValueError(f'box must be [x1, y1, x2, y2] for all images or one such box per '
                             f'image ({num_images}); got {box!r}')
        return [dict(alpha_box=[float(v) for v in b]) for b in boxes]

    def prepare_sample(self, sample: FusionDataSample, item: Any, index: int) -> None:
        h, w = sample.metainfo['ori_shape'][:2]
        x1, y1, x2, y2 = sample.metainfo['alpha_box']
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise ValueError(f'{self.describe_input(item, index)}: box '
                             f'{sample.metainfo["alpha_box"]} is empty or outside the {w}x{h} '
                             'image (x1 y1 x2 y2, pixels)')

    @torch.no_grad()
    def forward(self, inputs: dict, sam_mask: bool = False, **kwargs) -> list:
        test_cfg = self.model.test_cfg
        saved = test_cfg['output']
        try:
            masks = None
            if sam_mask:  # first: predict writes pred_alpha into the same samples
                test_cfg['output'] = 'sam_mask'
                masks = [s.pred_alpha.data.bool() for s in self.model.test_step(inputs)]
            test_cfg['output'] = 'alpha'
            samples = self.model.test_step(inputs)
        finally:
            test_cfg['output'] = saved
        if masks is not None:
            for sample, mask in zip(samples, masks):
                sample.pred_sam_mask = PixelData(data=mask)
        return samples

    def background_like(self, background: Any, h: int, w: int) -> np.ndarray:
        """``background`` (see the class docstring) as an RGB ``(h, w, 3)`` array."""
        if background is None:
            return checkerboard(h, w)
        if isinstance(background, (tuple, list)) and len(background) == 3 and \
                all(isinstance(v, (int, np.integer)) for v in background):
            if not all(0 <= v <= 255 for v in background):
                raise ValueError(f'background colour must be (R, G, B) in 0..255, got '
                                 f'{tuple(background)}')
            return np.broadcast_to(np.asarray(background, np.uint8), (h, w, 3)).copy()
        if isinstance(background, (str, Path)):
            loaded = load_image(str(background))
            if isinstance(loaded, str) and not Path(loaded).is_file():
                raise FileNotFoundError(f'background not found: {loaded}')
            background = loaded
        if not isinstance(background, (str, np.ndarray)):
            raise TypeError('background must be None, an (R, G, B) colour, an image path / '
                            f'skimage:NAME or a BGR array, got {type(background).__name__}')
        rgb = read_rgb(background)
        if rgb is None:
            raise ValueError(f'background {background} is not a readable image')
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)

    def visualize_one(self, inp: Any, pred: FusionDataSample, background: Any = None,
                      **kwargs) -> np.ndarray:
        image = read_rgb(inp)
        h, w = image.shape[:2]
        return composite(image, to_numpy(pred.pred_alpha.data)[0],
                         self.background_like(background, h, w))

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        alpha = to_numpy(pred.pred_alpha.data)[0].astype(np.float64)
        h, w = alpha.shape
        x1, y1, x2, y2 = pred.metainfo['alpha_box']
        inside = np.zeros((h, w), dtype=bool)
        inside[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = True
        out = dict(box=list(pred.metainfo['alpha_box']), height=h, width=w,
                   alpha_mean_inside_box=float(alpha[inside].mean()),
                   alpha_mean_outside_box=float(alpha[~inside].mean()) if (~inside).any()
                   else 0.0,
                   fractional_share=float(((alpha > 0.05) & (alpha < 0.95)).mean()))
        if 'pred_sam_mask' in pred:
            out['sam_mask'] = mask_to_rle(to_numpy(pred.pred_sam_mask.data)[0])
        if 'alpha_png' in pred.metainfo:
            out['alpha_png'] = pred.metainfo['alpha_png']
        return out

    def postprocess(self, preds: list, visualization: Optional[list],
                    return_datasamples: bool = False, out_dir: Optional[str] = None,
                    **kwargs) -> dict:
        if out_dir is not None:
            names = self._names or self.input_names(range(len(preds)))
            for name, pred in zip(names, preds):
                rel = osp.join('alpha', f'{name}.png')
                os.makedirs(osp.join(out_dir, 'alpha'), exist_ok=True)
                mmcv.imwrite(alpha_to_uint8(pred.pred_alpha.data[0]), osp.join(out_dir, rel))
                pred.set_metainfo(dict(alpha_png=rel))
                if 'pred_sam_mask' in pred:
                    mmcv.imwrite(alpha_to_uint8(pred.pred_sam_mask.data[0].float()),
                                 osp.join(out_dir, 'sam_mask', f'{name}.png'))
        return super().postprocess(preds, visualization, return_datasamples, out_dir, **kwargs)

    @staticmethod
    def describe(pred: dict) -> str:
        return (f'alpha: mean {pred["alpha_mean_inside_box"]:.3f} inside the box, '
                f'{pred["alpha_mean_outside_box"]:.3f} outside; '
                f'{pred["fractional_share"] * 100:.1f}% of pixels fractional (0.05-0.95)')


@INFERENCERS.register_module()
class MedicalSegInferencer(_ImageInferencer):
    """Medical image segmentation with a GMS (one foreground class, e.g. a
    lesion): the mask at each image's size.

    Predictions: ``{'height', 'width', 'threshold', 'area', 'foreground',
    'mask'}`` (``foreground``: share of the image; ``mask``: COCO RLE).
    Drawing: the mask filled over the image (``alpha`` its opacity).
    """
    task_kind = 'medical segmentation'
    model_types = ('GMS', )

    def visualize_one(self, inp: Any, pred: FusionDataSample, alpha: float = 0.5,
                      **kwargs) -> np.ndarray:
        return self._draw('medical', inp, pred, ('pred_sem_seg', ), alpha)

    def pred_to_dict(self, pred: FusionDataSample) -> dict:
        mask = to_numpy(pred.pred_sem_seg.data)[0].astype(bool)
        return dict(height=mask.shape[0], width=mask.shape[1],
                    threshold=float(getattr(self.model, 'threshold', 0.5)),
                    foreground=float(mask.mean()), **_mask_entry(mask))

    @staticmethod
    def describe(pred: dict) -> str:
        return f'predicted foreground: {pred["foreground"]:.1%} of the image'
