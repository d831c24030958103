"""X-Decoder inference behind one call: a task dispatcher over the task
Inferencers of :mod:`mmfusion.apis.vision_inferencers` (one model shared by
all of them; no inference code of its own)."""
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
from mmengine.config import Config
from torch import nn

from mmfusion.registry import INFERENCERS
from mmfusion.structures import FusionDataSample

from . import vision_inferencers as vi
from .inference import ImageType
from .vision_inferencers import SEG_TASKS, OpenVocabSegInferencer, Texts

TASKS = SEG_TASKS + ('referring', 'caption', 'retrieval')
TASK_INFERENCERS = dict(semantic=OpenVocabSegInferencer, instance=OpenVocabSegInferencer,
                        panoptic=OpenVocabSegInferencer, referring=vi.ReferringSegInferencer,
                        caption=vi.CaptionInferencer, retrieval=vi.RetrievalInferencer)

# What each task writes; the first field is the one a drawing needs.
PRED_FIELDS = dict(
    semantic=('pred_sem_seg',),
    instance=('pred_instances',),
    panoptic=('pred_panoptic_seg',),
    referring=('pred_sem_seg',),
    caption=('pred_caption',),
    retrieval=('pred_retrieval_scores', 'pred_image_embedding', 'pred_text_embeddings'),
)


@INFERENCERS.register_module()
class XDecoderInferencer:
    """Every task of an :class:`~mmfusion.models.XDecoder` (segmentation
    tasks also of a FrozenSeg) on images, returning data samples.

    Example::

        inferencer = XDecoderInferencer('configs/xdecoder/...py', 'iter_1200.pth')
        samples = inferencer(['a.jpg', 'b.jpg'], task='semantic',
                             texts=[['person', 'sky'], ['dog', 'grass', 'road']])
        inferencer.visualize('a.jpg', samples[0], 'semantic', 'a_seg.png')

    For JSON predictions, drawings and ``out_dir`` files use the task's
    Inferencer (``inferencer.inferencer_for(task)``, e.g.
    :class:`OpenVocabSegInferencer`) directly.

    Args:
        model: a model-index name, a config path / :class:`Config`, or an
            already built model (it keeps its weights unless ``checkpoint``
            is given; its ``cfg``, if any, gives the test pipeline).
        checkpoint: weights to load into the model.
        device: e.g. ``'cpu'``, ``'cuda:0'``.
        cfg_options: config overrides (config input only).
        compile: ``torch.compile`` the model's inference (see
            :class:`FusionInferencer`); every task's Inferencer shares it.
    """

    def __init__(self,
                 model: Union[str, Path, Config, nn.Module],
                 checkpoint: Optional[str] = None,
                 device: str = 'cpu',
                 cfg_options: Optional[dict] = None,
                 compile: Union[bool, dict] = False) -> None:
        seg = OpenVocabSegInferencer(model, checkpoint if checkpoint else False, device,
                                     cfg_options, show_progress=False, compile=compile)
        self.model = seg.model
        self._inferencers: Dict[type, OpenVocabSegInferencer] = {OpenVocabSegInferencer: seg}

    @property
    def tasks(self) -> tuple:
        return tuple(getattr(self.model, 'tasks', SEG_TASKS))

    def inferencer_for(self, task: str):
        """The task's Inferencer over this model."""
        if task not in TASKS:
            raise ValueError(f'unknown task {task!r}; expected one of {TASKS}')
        cls = TASK_INFERENCERS[task]
        if cls not in self._inferencers:
            self._inferencers[cls] = cls(self.model, show_progress=False)
        return self._inferencers[cls]

    @property
    def visualizer(self):
        """The segmentation drawer (``alpha``: mask opacity)."""
        return self.inferencer_for('semantic').drawer()

    def default_classes(self) -> Optional[List[str]]:
        return self.inferencer_for('semantic').default_classes()

    @staticmethod
    def task_kwargs(task: str, texts: Texts) -> dict:
        """``texts`` as the task Inferencer's call kwargs."""
        if task in SEG_TASKS:
            return dict(task=task, texts=texts)
        if task == 'referring':
            return dict(text=texts)
        if task == 'caption':
            if texts is not None:
                raise ValueError(f'task "caption" takes no texts, got {texts!r}')
            return {}
        return dict(texts=texts)

    def metainfo(self, task: str, texts: Texts, num_images: int) -> List[Dict]:
        """Per image the metainfo ``model.predict`` reads for ``task``
        (raises ``ValueError`` for texts that do not fit the task)."""
        kwargs = self.task_kwargs(task, texts) if task in TASKS else {}
        return self.inferencer_for(task).metainfo(num_images, **kwargs)

    def __call__(self,
                 images: Union[ImageType, List[ImageType]],
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
        inferencer = self.inferencer_for(task)
        kwargs = self.task_kwargs(task, texts)
        samples = inferencer(images, return_datasamples=True, batch_size=batch_size,
                             return_vis=False, **kwargs)['predictions']
        return samples[0] if single else samples

    def visualize(self, image: ImageType, sample: FusionDataSample, task: str,
                  out_file: Optional[str] = None, score_thr: float = 0.3) -> np.ndarray:
        """Draw ``task``'s prediction over ``image`` (path or BGR array):
        masks coloured by class with their names, the referring mask with its
        sentence, the caption, or the ranked retrieval candidates. Writes
        ``out_file`` (PNG) when given; returns the RGB drawing."""
        inferencer = self.inferencer_for(task)
        field = PRED_FIELDS[task][0]
        if field not in sample:
            raise ValueError(f'the sample has no {field}: run the inferencer with task={task!r} '
                             'first')
        kwargs = dict(alpha=self.visualizer.alpha)
        if task in ('semantic', 'instance', 'panoptic'):
            kwargs['score_thr'] = score_thr
        if task in ('caption', 'retrieval'):
            kwargs = {}
        view = FusionDataSample(metainfo=sample.metainfo)
        for key in PRED_FIELDS[task]:
            if key in sample:
                setattr(view, key, getattr(sample, key))
        drawn = inferencer.visualize_one(image, view, **kwargs)
        if out_file is not None:
            inferencer.save_visualization(drawn, out_file)
        return drawn
