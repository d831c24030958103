"""Class names embedded by a text encoder, and Mask2Former-style training
segments: what X-Decoder and the region-text backbone pretraining share."""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmfusion.models.encoders.text.prompt_templates import get_templates
from mmfusion.structures import FusionDataSample

IGNORE_INDEX = 255


class OpenVocabSegMixin:
    """For models with ``text_encoder`` (``embed_class_names``),
    ``templates``, default ``classes`` and ``thing_classes``.

    Class names of an image come from its data sample's metainfo ``classes``
    or else the model's ``classes``; thing names likewise (``None``: every
    class is a thing).
    """

    def init_class_names(self, templates: Union[str, Sequence[str]],
                         classes: Optional[Sequence[str]],
                         thing_classes: Optional[Sequence[str]]) -> None:
        """Set ``templates`` (resolved by name), default ``classes`` and
        ``thing_classes`` from the model's arguments."""
        self.templates = get_templates(templates)
        self.classes = list(classes) if classes else None
        self.thing_classes = list(thing_classes) if thing_classes is not None else None

    def classes_of(self, sample: Optional[FusionDataSample]) -> List[str]:
        classes = sample.metainfo.get('classes') if sample is not None else None
        classes = classes or self.classes
        if not classes:
            raise ValueError(f'{type(self).__name__} needs class names: set `classes` in the '
                             'model config (e.g. the dataset metainfo) or metainfo["classes"] '
                             'per sample; an empty list is not allowed')
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
        return self.text_encoder.embed_class_names(list(classes), self.templates)

    def batch_class_embeds(self, data_samples: Sequence[FusionDataSample]) -> List[Tensor]:
        return [self.class_embeds(self.classes_of(s)) for s in data_samples]

    # torch.compile: excluded, reads every metainfo value; only numbers and tuples of numbers
    # (shapes, scale factors) go to the head: a traced frame holding strings (paths, class names)
    # or per-image lists (segments_info) is guarded on them (a recompile every batch).
    @staticmethod
    @torch.compiler.disable
    def _metas(data_samples: Sequence[FusionDataSample], img: Tensor) -> List[dict]:
        """Per image the metainfo the head reads: the numeric values
        (shapes, scale factors, ids), not paths, names or segment lists."""
        metas = []
        for s in data_samples:
            meta = {k: v for k, v in s.metainfo.items() if _is_numeric(v)}
            meta.setdefault('batch_input_shape', tuple(img.shape[-2:]))
            meta.setdefault('img_shape', tuple(img.shape[-2:]))
            meta.setdefault('ori_shape', meta['img_shape'])
            metas.append(meta)
        return metas

    # torch.compile: excluded, per-sample targets built on the CPU from Python label lists.
    @torch.compiler.disable
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
            raise KeyError(f'{type(self).__name__} training needs gt_instances or gt_sem_seg; '
                           f'sample {sample.metainfo.get("img_path")} has neither')
        height_width = masks[0].shape[-2:]
        return InstanceData(labels=torch.cat(labels),
                            masks=torch.cat([m.reshape(-1, *height_width) for m in masks]))


def _is_numeric(value) -> bool:
    """A number, or a tuple/list/array of numbers (a shape, a scale factor)."""
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, (int, float)) for v in value)
    return isinstance(value, (int, float, np.ndarray))
