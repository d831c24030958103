"""X-Decoder inference on images: open-vocabulary segmentation, referring
segmentation, captioning and image-text retrieval behind one call."""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from torch import nn

from mmfusion.models.xdecoder import SEG_TASKS, TASKS
from mmfusion.registry import INFERENCERS, VISUALIZERS
from mmfusion.structures import FusionDataSample
from .inference import ImageType, build_test_pipeline, init_model, load_weights, prepare_inputs

# What each task writes; the first field is the one a drawing needs.
PRED_FIELDS = dict(
    semantic=('pred_sem_seg',),
    instance=('pred_instances',),
    panoptic=('pred_panoptic_seg',),
    referring=('pred_sem_seg',),
    caption=('pred_caption',),
    retrieval=('pred_retrieval_scores', 'pred_image_embedding', 'pred_text_embeddings'),
)
Texts = Union[str, Sequence[str], Sequence[Sequence[str]], None]


@INFERENCERS.register_module()
class XDecoderInferencer:
    """Run an :class:`~mmfusion.models.XDecoder` on images.

    Example::

        inferencer = XDecoderInferencer('configs/xdecoder/...py', 'iter_1200.pth')
        samples = inferencer(['a.jpg', 'b.jpg'], task='semantic',
                             texts=[['person', 'sky'], ['dog', 'grass', 'road']])
        inferencer.visualize('a.jpg', samples[0], 'semantic', 'a_seg.png')

    Args:
        model: a config path / :class:`Config`, or an already built model (it
            keeps its weights unless ``checkpoint`` is given; its ``cfg``, if
            any, gives the test pipeline).
        checkpoint: weights to load into the model.
        device: e.g. ``'cpu'``, ``'cuda:0'``.
        cfg_options: config overrides (config input only).
    """

    def __init__(self,
                 model: Union[str, Path, Config, nn.Module],
                 checkpoint: Optional[str] = None,
                 device: str = 'cpu',
                 cfg_options: Optional[dict] = None) -> None:
        if isinstance(model, nn.Module):
            if cfg_options:
                raise ValueError('cfg_options only apply when the model is given as a config')
            load_weights(model, checkpoint)
            self.model = model.to(device).eval()
        else:
            self.model = init_model(model, checkpoint, device=device, cfg_options=cfg_options)
        self.pipeline = build_test_pipeline(getattr(self.model, 'cfg', None))
        self._visualizer = None

    # -- inputs ------------------------------------------------------------
    def default_classes(self) -> Optional[List[str]]:
        """The model's own class names (config ``classes`` or the
        checkpoint's ``dataset_meta``), used when no texts are given."""
        classes = getattr(self.model, 'classes', None) or \
            (getattr(self.model, 'dataset_meta', None) or {}).get('classes')
        return list(classes) if classes else None

    def _known_stuff(self) -> set:
        """Names the model knows as stuff (one merged segment per class)."""
        meta = getattr(self.model, 'dataset_meta', None) or {}
        things = getattr(self.model, 'thing_classes', None)
        if things is None:
            things = meta.get('thing_classes')
        if things is None:
            return set()
        return set(self.default_classes() or ()) - set(things)

    @staticmethod
    def _per_image_lists(texts: Texts, num_images: int, what: str,
                         task: str) -> List[List[str]]:
        """A shared list of strings or one list per image -> one list per image."""
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

    def metainfo(self, task: str, texts: Texts, num_images: int) -> List[Dict]:
        """Per image the metainfo ``model.predict`` reads for ``task``."""
        if task not in TASKS:
            raise ValueError(f'unknown task {task!r}; expected one of {TASKS}')
        if task in SEG_TASKS:
            if texts is None:
                classes = self.default_classes()
                if classes is None:
                    raise ValueError(f'task {task!r} needs class names: pass texts=[...] '
                                     '(the model has no default classes)')
                lists = [classes] * num_images
            else:
                lists = self._per_image_lists(texts, num_images, 'class names', task)
            # A name the model knows as stuff stays stuff; any other is a thing.
            stuff = self._known_stuff()
            return [dict(classes=list(c), thing_classes=[n for n in c if n not in stuff])
                    for c in lists]
        if task == 'caption':
            if texts is not None:
                raise ValueError(f'task "caption" takes no texts, got {texts!r}')
            return [{} for _ in range(num_images)]
        if task == 'retrieval':
            if texts is None:
                raise ValueError('task "retrieval" needs texts: a list of candidate sentences '
                                 '(shared) or one list per image')
            lists = self._per_image_lists(texts, num_images, 'candidate sentences', task)
            return [dict(texts=list(c)) for c in lists]
        # referring
        if isinstance(texts, str):
            sentences = [texts] * num_images
        elif isinstance(texts, Sequence) and all(isinstance(t, str) for t in texts):
            sentences = list(texts)
        else:
            raise ValueError('task "referring" needs texts: one sentence (str) for all images '
                             f'or a list of sentences, one per image; got {texts!r}')
        if len(sentences) != num_images:
            raise ValueError(f'task "referring" needs one sentence per image: got '
                             f'{len(sentences)} sentences for {num_images} images')
        for i, sentence in enumerate(sentences):
            if not sentence.strip():
                raise ValueError(f'the referring sentence for image {i} is empty')
        return [dict(text=s) for s in sentences]

    # -- inference ---------------------------------------------------------
    @torch.no_grad()
    def __call__(self,
                 images: Union[ImageType, Sequence[ImageType]],
                 task: str = 'semantic',
                 texts: Texts = None,
                 batch_size: int = 4) -> Union[FusionDataSample, List[FusionDataSample]]:
        """Predict ``task`` for each image.

        Args:
            images: an image path, a BGR ``uint8`` array, or a list of them.
            task: one of ``semantic``, ``instance``, ``panoptic`` (texts: class
                names, a list shared by all images or one list per image;
                default the model's classes), ``referring`` (a sentence, or
                one per image), ``caption`` (no texts) or ``retrieval``
                (candidate sentences, shared or one list per image).
            batch_size: images per forward pass (images of different sizes
                are padded to a common size, as in validation).

        Returns:
            One data sample per image (a single sample for a single image)
            with the task's ``pred_*`` fields at the image's size and the
            texts it used in its metainfo (``classes``/``thing_classes``,
            ``text`` or ``texts``).
        """
        single = isinstance(images, (str, Path, np.ndarray))
        images = [images] if single else list(images)
        if not images:
            raise ValueError('no images given')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        metas = self.metainfo(task, texts, len(images))
        samples = []
        for start in range(0, len(images), batch_size):
            batch = prepare_inputs(images[start:start + batch_size], self.pipeline)
            for packed, meta in zip(batch, metas[start:start + batch_size]):
                packed['data_samples'].set_metainfo(meta)
            data = self.model.data_preprocessor(pseudo_collate(batch), False)
            samples.extend(self.model.predict(data['inputs'], data['data_samples'], task=task))
        return samples[0] if single else samples

    # -- drawing -----------------------------------------------------------
    @property
    def visualizer(self):
        if self._visualizer is None:
            self._visualizer = VISUALIZERS.build(
                dict(type='FusionVisualizer', name=f'xdecoder_inferencer_{id(self)}'))
            self._visualizer.dataset_meta = getattr(self.model, 'dataset_meta', None) or {}
        return self._visualizer

    def visualize(self, image: ImageType, sample: FusionDataSample, task: str,
                  out_file: Optional[str] = None, score_thr: float = 0.3) -> np.ndarray:
        """Draw ``task``'s prediction over ``image`` (path or BGR array):
        masks coloured by class with their names, the referring mask with its
        sentence, the caption, or the ranked retrieval candidates. Writes
        ``out_file`` (PNG) when given; returns the RGB drawing."""
        if task not in TASKS:
            raise ValueError(f'unknown task {task!r}; expected one of {TASKS}')
        field = PRED_FIELDS[task][0]
        if field not in sample:
            raise ValueError(f'the sample has no {field}: run the inferencer with task={task!r} '
                             'first')
        view = FusionDataSample(metainfo=sample.metainfo)
        for key in PRED_FIELDS[task]:
            if key in sample:
                setattr(view, key, getattr(sample, key))
        rgb = mmcv.imread(str(image), channel_order='rgb') if not isinstance(image, np.ndarray) \
            else np.ascontiguousarray(mmcv.bgr2rgb(image) if image.ndim == 3 else
                                      mmcv.gray2rgb(image))
        return self.visualizer.add_datasample(task, rgb, view, draw_gt=False, out_file=out_file,
                                              pred_score_thr=score_thr)
