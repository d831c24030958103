"""X-Decoder (Zou et al., 2023): open-vocabulary semantic, instance and
panoptic segmentation with class names embedded by a text encoder."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor

from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample
from ..encoders.text.prompt_templates import get_templates

IGNORE_INDEX = 255


@MODELS.register_module()
class XDecoder(BaseModel):
    """Backbone -> :class:`XDecoderHead`, classes scored against text embeddings.

    Class names of an image come from its data sample's metainfo
    ``classes`` (a user-given list) or else the model's ``classes``; each
    image is classified among its own list, so images with different lists
    can share a batch. Thing/stuff names (``thing_classes``, likewise per
    sample or from the model) decide which ground-truth segments are built
    from ``gt_sem_seg`` and how panoptic/instance outputs treat a class;
    without them every class is a thing.

    Training targets are Mask2Former's panoptic ones: ``gt_instances`` (thing
    segments, labels into the image's class list) plus one segment per stuff
    label of ``gt_sem_seg``. A sample with only ``gt_sem_seg`` (semantic
    datasets) gets one segment per label.

    Args:
        backbone (dict): Any registered encoder/backbone returning a dict with
            ``maps`` or a tuple of maps, high to low resolution.
        head (dict): :class:`XDecoderHead` config (``embed_dim`` defaults to
            the text encoder's).
        text_encoder (dict): e.g. ``OpenCLIPTextEncoder`` (frozen by default)
            with ``encode_class_names``.
        templates (str | list[str]): Prompt templates for class names.
        classes (list[str], optional): Default class names (e.g. the
            dataset's ``metainfo['classes']``).
        thing_classes (list[str], optional): Which of them are things.
        data_preprocessor (dict, optional): e.g. ``MultiModalDataPreprocessor``.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 text_encoder: dict,
                 templates: Union[str, Sequence[str]] = 'simple',
                 classes: Optional[Sequence[str]] = None,
                 thing_classes: Optional[Sequence[str]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is not None:
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.text_encoder = MODELS.build(text_encoder)
        head = dict(head)
        head.setdefault('embed_dim', self.text_encoder.embed_dim)
        self.head = MODELS.build(head)
        self.templates = get_templates(templates)
        self.classes = list(classes) if classes else None
        self.thing_classes = list(thing_classes) if thing_classes is not None else None

    # -- class names -------------------------------------------------------
    def classes_of(self, sample: Optional[FusionDataSample]) -> List[str]:
        classes = sample.metainfo.get('classes') if sample is not None else None
        classes = classes or self.classes
        if not classes:
            raise ValueError('X-Decoder needs class names: set `classes` in the model config '
                             '(e.g. the dataset metainfo) or metainfo["classes"] per sample; '
                             'an empty list is not allowed')
        return list(classes)

    def thing_flags_of(self, sample: Optional[FusionDataSample],
                       classes: Sequence[str]) -> Optional[Tensor]:
        things = sample.metainfo.get('thing_classes') if sample is not None else None
        if things is None:
            things = self.thing_classes
        if things is None:
            return None
        things = set(things)
        return torch.tensor([c in things for c in classes], dtype=torch.bool)

    def class_embeds(self, classes: Sequence[str]) -> Tensor:
        """(C, D) prompt-ensembled text embeddings (the text encoder caches
        them while it needs no gradient)."""
        return self.text_encoder.encode_class_names(list(classes), self.templates)

    def batch_class_embeds(self, data_samples: Sequence[FusionDataSample]) -> List[Tensor]:
        return [self.class_embeds(self.classes_of(s)) for s in data_samples]

    # -- features ----------------------------------------------------------
    def extract_feat(self, img: Tensor) -> List[Tensor]:
        out = self.backbone(img)
        maps = out['maps'] if isinstance(out, dict) else out
        return list(maps)

    @staticmethod
    def _metas(data_samples: Sequence[FusionDataSample], img: Tensor) -> List[dict]:
        metas = []
        for s in data_samples:
            meta = dict(s.metainfo)
            meta.setdefault('batch_input_shape', tuple(img.shape[-2:]))
            meta.setdefault('img_shape', tuple(img.shape[-2:]))
            meta.setdefault('ori_shape', meta['img_shape'])
            metas.append(meta)
        return metas

    # -- forward -----------------------------------------------------------
    def forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            img = inputs['img']
            samples = data_samples or [FusionDataSample() for _ in range(len(img))]
            return self.head(self.extract_feat(img), self._metas(samples, img))
        raise RuntimeError(f'invalid mode "{mode}"; expected loss, predict or tensor')

    def gt_segments(self, sample: FusionDataSample, classes: Sequence[str]) -> InstanceData:
        """Thing instances + one segment per stuff label of ``gt_sem_seg``."""
        labels, masks = [], []
        has_instances = 'gt_instances' in sample and 'masks' in sample.gt_instances
        if has_instances:
            inst = sample.gt_instances
            m = inst.masks
            m = m.to_tensor(dtype=torch.bool, device='cpu') if hasattr(m, 'to_tensor') else m
            labels.append(inst.labels.long().cpu())
            masks.append(torch.as_tensor(m).bool().cpu())
        if 'gt_sem_seg' in sample:
            sem = sample.gt_sem_seg.data[0].cpu()
            flags = self.thing_flags_of(sample, classes)
            for label in sem.unique().tolist():
                if label == IGNORE_INDEX:
                    continue
                is_thing = bool(flags[label]) if flags is not None else has_instances
                if not is_thing:
                    labels.append(torch.tensor([label]))
                    masks.append((sem == label)[None])
        if not labels:
            raise KeyError(f'X-Decoder training needs gt_instances or gt_sem_seg; sample '
                           f'{sample.metainfo.get("img_path")} has neither')
        height_width = masks[0].shape[-2:]
        return InstanceData(labels=torch.cat(labels),
                            masks=torch.cat([m.reshape(-1, *height_width) for m in masks]))

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        img = inputs['img']
        class_embeds = self.batch_class_embeds(data_samples)
        gts = [self.gt_segments(s, self.classes_of(s)).to(img.device) for s in data_samples]
        return self.head.loss(self.extract_feat(img), class_embeds, gts,
                              self._metas(data_samples, img))

    @torch.no_grad()
    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None,
                task: Optional[str] = None) -> List[FusionDataSample]:
        """Writes ``pred_sem_seg`` / ``pred_panoptic_seg`` / ``pred_instances``
        (``task`` or ``head.test_cfg['task']``) at each sample's ``ori_shape``."""
        img = inputs['img']
        data_samples = data_samples or [FusionDataSample() for _ in range(len(img))]
        classes = [self.classes_of(s) for s in data_samples]
        flags = [self.thing_flags_of(s, c) for s, c in zip(data_samples, classes)]
        results = self.head.predict(self.extract_feat(img), self.batch_class_embeds(data_samples),
                                    self._metas(data_samples, img), flags, task=task)
        for sample, result in zip(data_samples, results):
            for key, value in result.items():
                setattr(sample, key, value)
        return data_samples
