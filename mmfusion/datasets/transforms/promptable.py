"""Per-object masks and their prompts, for promptable segmentation (SAM)."""
from typing import Optional

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.structures.mask import BitmapMasks
from mmengine import fileio
from scipy import ndimage

from mmfusion.registry import TRANSFORMS
from mmfusion.structures.prompt_sampling import (
    evaluation_click,
    jitter_boxes,
    masks_to_boxes,
    random_points_in,
)

from .loading import read_binary_mask
from .loading_masks import decode_coco_segmentation, rgb2id


@TRANSFORMS.register_module()
class LoadPromptableAnnotations(BaseTransform):
    """The objects of a :class:`PromptableSegDataset` sample as masks.

    Adds ``gt_masks`` (mmdet ``BitmapMasks``, so ``mmdet.Resize`` and flips
    transform them with the image) and ``gt_bboxes_labels`` (the object's
    class index; 0 for mask folders). Place it after ``LoadImageFromFile``.

    Args:
        min_component_area: for mask folders, connected components smaller
            than this (pixels) are not objects (speckle).

    Raises:
        ValueError: naming the sample, when an annotation decodes to an
            empty mask or a mask's size differs from its image's.
    """

    def __init__(self, min_component_area: int = 1) -> None:
        self.min_component_area = min_component_area

    def transform(self, results: dict) -> dict:
        if 'ori_shape' not in results:
            raise KeyError('LoadPromptableAnnotations needs "ori_shape"; put it after '
                           'LoadImageFromFile')
        if 'objects' not in results:
            raise KeyError(f'LoadPromptableAnnotations needs "objects" in the results of '
                           f'{results.get("img_path")}; use PromptableSegDataset')
        h, w = results['ori_shape'][:2]
        img_path = results.get('img_path')
        objects = results['objects']
        if objects is None:  # mask folder: each connected component
            mask = read_binary_mask(results['seg_map_path'], (h, w), img_path)
            components, num = ndimage.label(mask, structure=np.ones((3, 3)))
            masks = [components == i for i in range(1, num + 1)]
            masks = [m for m in masks if m.sum() >= self.min_component_area]
            labels = [0] * len(masks)
        else:
            if 'width' in results and (results['height'], results['width']) != (h, w):
                raise ValueError(f'{img_path}: the annotation file says the image is '
                                 f'{results["width"]}x{results["height"]} (WxH), the file is '
                                 f'{w}x{h}')
            segment_ids = None
            if 'seg_map_path' in results:  # COCO panoptic
                segment_ids = read_panoptic_png(results['seg_map_path'], (h, w), img_path)
            masks, labels = [], []
            for obj in objects:
                source = f'{img_path}: object {obj.get("id")}'
                if segment_ids is None:
                    m = decode_coco_segmentation(obj['segmentation'], h, w, source).astype(bool)
                else:
                    m = segment_ids == obj['id']
                if not m.any():
                    raise ValueError(f'{source} has an empty mask')
                masks.append(m)
                labels.append(obj['label'])
        results['gt_masks'] = BitmapMasks(
            np.stack(masks).astype(np.uint8) if masks else np.zeros((0, h, w), np.uint8), h, w)
        results['gt_bboxes_labels'] = np.asarray(labels, np.int64)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(min_component_area={self.min_component_area})'


def read_panoptic_png(path: str, hw: tuple, img_path: Optional[str]) -> np.ndarray:
    """Segment ids (R + 256 G + 256^2 B) of a COCO panoptic PNG of size ``hw``."""
    try:
        color = mmcv.imfrombytes(fileio.get(path), flag='color', channel_order='rgb',
                                 backend='pillow')
    except Exception as e:
        raise ValueError(f'cannot read panoptic PNG {path}: {e}') from e
    if color.shape[:2] != tuple(hw):
        raise ValueError(f'panoptic PNG {path} is {color.shape[1]}x{color.shape[0]} (WxH) but its '
                         f'image {img_path} is {hw[1]}x{hw[0]}')
    return rgb2id(color)


@TRANSFORMS.register_module()
class GeneratePrompts(BaseTransform):
    """Draw one prompt per object from its (resized) mask, as SAM's training
    and the interactive-segmentation evaluations do.

    Writes ``results['prompts']`` (packed into ``data_sample.prompts``):
    ``boxes`` (N, 4) ``x1 y1 x2 y2`` and ``has_box`` (N,), ``points``
    (N, 1, 2) ``(x, y)`` and ``point_labels`` (N, 1) (1 = foreground, -1 =
    no point), all in the current image's pixels. The image itself is not
    changed, so cached image features stay valid.

    Args:
        prompt: ``'box'`` (the mask's box), ``'point'`` (one foreground
            point) or ``'box_or_point'`` (a box with probability
            ``box_prob``, else a point; SAM's first prompt, paper appendix A).
        box_prob: see ``'box_or_point'``.
        box_noise: jitter each box coordinate by Gaussian noise of std
            ``box_noise_std`` x the box side, at most ``box_noise_max`` pixels
            (SAM's training boxes; MedSAM perturbs its boxes too). Off for
            evaluation with ground-truth boxes.
        random_point: a point drawn uniformly from the mask (SAM training);
            otherwise the mask's innermost pixel (the standard first click
            of the NoC protocol).
    """

    PROMPTS = ('box', 'point', 'box_or_point')

    def __init__(self, prompt: str = 'box', box_prob: float = 0.5, box_noise: bool = False,
                 box_noise_std: float = 0.1, box_noise_max: float = 20.0,
                 random_point: bool = False) -> None:
        if prompt not in self.PROMPTS:
            raise ValueError(f'GeneratePrompts: prompt must be one of {self.PROMPTS}, '
                             f'got {prompt!r}')
        self.prompt = prompt
        self.box_prob = box_prob
        self.box_noise = box_noise
        self.box_noise_std = box_noise_std
        self.box_noise_max = box_noise_max
        self.random_point = random_point

    def transform(self, results: dict) -> dict:
        if 'gt_masks' not in results:
            raise KeyError(f'GeneratePrompts needs gt_masks in the results of '
                           f'{results.get("img_path")}; put LoadPromptableAnnotations first')
        gt = results['gt_masks']
        masks = torch.from_numpy(gt.to_ndarray() if hasattr(gt, 'to_ndarray') else
                                 np.asarray(gt)).bool()
        n, h, w = masks.shape
        empty = (~masks.flatten(1).any(1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f'{results.get("img_path")}: objects {empty} have empty masks '
                             'after the preceding transforms')
        boxes = masks_to_boxes(masks)
        if self.box_noise and n:
            generator = torch.Generator().manual_seed(int(np.random.randint(2**31)))
            boxes = jitter_boxes(boxes, (h, w), self.box_noise_std, self.box_noise_max, generator)
        if self.prompt == 'box':
            has_box = np.ones(n, bool)
        elif self.prompt == 'point':
            has_box = np.zeros(n, bool)
        else:
            has_box = np.random.rand(n) < self.box_prob
        if self.random_point and n:
            generator = torch.Generator().manual_seed(int(np.random.randint(2**31)))
            points, _ = random_points_in(masks, generator)
        else:
            empty_pred = np.zeros((h, w), bool)
            points = torch.tensor([evaluation_click(empty_pred, m)[0] for m in masks.numpy()],
                                  dtype=torch.float).reshape(n, 2)
        labels = torch.where(torch.from_numpy(has_box), -1, 1).long()
        results['prompts'] = dict(boxes=boxes.float(), has_box=torch.from_numpy(has_box),
                                  points=points[:, None].float(), point_labels=labels[:, None])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prompt={self.prompt!r}, box_prob={self.box_prob}, '
                f'box_noise={self.box_noise}, random_point={self.random_point})')
