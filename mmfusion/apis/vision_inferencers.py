"""Inferencers of the image families.

* :class:`OpenVocabSegInferencer`: X-Decoder and FrozenSeg: images + class
  names -> semantic, instance or panoptic segments; drawing: the segments
  coloured by class with their names.
* :class:`ReferringSegInferencer`, :class:`CaptionInferencer`,
  :class:`RetrievalInferencer`: X-Decoder's language branches (a sentence ->
  its mask; a caption; candidate sentences ranked).

Predictions are JSON-ready dicts (masks as COCO RLE, see
:func:`~mmfusion.apis.base_inferencer.mask_to_rle`); drawings are RGB arrays
at each image's size. Configs given as files (or :class:`Config`) lose the
weight files they name for their parts (pre-trained towers) when those are not
on this machine, with a warning: a trained checkpoint holds every weight.
"""
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

from mmfusion.registry import INFERENCERS, VISUALIZERS
from mmfusion.structures import FusionDataSample

from .base_inferencer import FusionInferencer, ModelSpec, mask_to_rle, read_rgb, to_numpy
from .inference import prepare_inputs
from .sequence_inferencers import config_without_missing_weights

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

    def __init__(self, model: ModelSpec, weights: Union[str, bool, None] = None,
                 device: str = 'cpu', cfg_options: Optional[dict] = None,
                 show_progress: bool = True) -> None:
        model, cfg_options = config_without_missing_weights(model, cfg_options)
        super().__init__(model, weights, device, cfg_options, show_progress)
        self._drawer = None

    def drawer(self, alpha: float = 0.5):
        if self._drawer is None:
            self._drawer = VISUALIZERS.build(
                dict(type='FusionVisualizer', name=f'{type(self).__name__}-{id(self)}'))
            self._drawer.dataset_meta = getattr(self.model, 'dataset_meta', None) or {}
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha (mask opacity) must be in [0, 1], got {alpha}')
        self._drawer.alpha = alpha
        return self._drawer

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
            for packed, meta in zip(batch, metas[start:start + batch_size]):
                packed['data_samples'].set_metainfo(meta)
            yield self.collate_fn(batch)

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
    #: the task ``predict`` runs (fixed, or the ``task`` kwarg)
    task: str = ''
    #: the data-sample fields the task fills (the first one is drawn)
    pred_fields: Sequence[str] = ()

    def __init__(self, model: ModelSpec, weights: Union[str, bool, None] = None,
                 device: str = 'cpu', cfg_options: Optional[dict] = None,
                 show_progress: bool = True) -> None:
        super().__init__(model, weights, device, cfg_options, show_progress)
        tasks = getattr(self.model, 'tasks', ())
        if self.task and self.task not in tasks:
            raise ValueError(f'{type(self).__name__}: this {type(self.model).__name__} has no '
                             f'{self.task} branch; it predicts {", ".join(tasks)}')

    def check_task(self, task: str) -> str:
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
            from mmdet.evaluation.functional import INSTANCE_OFFSET
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
