from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import LoadAnnotations as MMDetLoadAnnotations
from mmdet.datasets.transforms import LoadPanopticAnnotations as MMDetLoadPanopticAnnotations
from pycocotools import mask as mask_utils

from mmfusion.registry import TRANSFORMS


def rgb2id(color: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colours (H, W, 3) to segment ids R + 256 G + 256^2 B."""
    if color.ndim != 3 or color.shape[2] != 3:
        raise ValueError(f'a COCO panoptic PNG must be RGB, got shape {color.shape}')
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


@TRANSFORMS.register_module()
class LoadPanopticAnnotations(MMDetLoadPanopticAnnotations):
    """mmdet's COCO panoptic loader, with plain numpy boxes by default.

    Reads the PNG at ``seg_map_path`` (segment id = R + 256 G + 256^2 B) and
    ``segments_info`` / ``instances`` from :class:`CocoPanopticCaptionDataset`
    and adds ``gt_bboxes`` ((N, 4) float32 xyxy), ``gt_bboxes_labels``,
    ``gt_ignore_flags``, ``gt_masks`` (mmdet ``BitmapMasks`` of the thing
    segments, in the order of ``instances``) and ``gt_seg_map`` (semantic
    labels: things, then stuff, 255 = void). Needs ``ori_shape`` (place it
    after ``LoadImageFromFile``).
    """

    def __init__(self, with_bbox: bool = True, with_label: bool = True, with_mask: bool = True,
                 with_seg: bool = True, box_type: Optional[str] = None,
                 imdecode_backend: str = 'cv2', backend_args: Optional[dict] = None) -> None:
        # mmdet's __init__ only imports panopticapi (not on PyPI) for ``rgb2id``;
        # skip it and use the same one-line conversion.
        MMDetLoadAnnotations.__init__(
            self, with_bbox=with_bbox, with_label=with_label, with_mask=with_mask,
            with_seg=with_seg, with_keypoints=False, box_type=box_type,
            imdecode_backend=imdecode_backend, backend_args=backend_args)
        self.rgb2id = rgb2id

    def transform(self, results: dict) -> dict:
        for key in ('segments_info', 'instances'):
            if key not in results:
                raise KeyError(f'LoadPanopticAnnotations needs "{key}" in the results of '
                               f'{results.get("img_path")}; use CocoPanopticCaptionDataset')
        if 'ori_shape' not in results:
            raise KeyError('LoadPanopticAnnotations needs "ori_shape"; put it after '
                           'LoadImageFromFile')
        try:
            return super().transform(results)
        except (FileNotFoundError, OSError) as e:
            raise FileNotFoundError(
                f'cannot read panoptic PNG {results.get("seg_map_path")}: {e}') from e


def decode_coco_segmentation(segm, height: int, width: int, source: str = '') -> np.ndarray:
    """A COCO ``segmentation`` field (polygons, RLE or uncompressed RLE) as an
    (H, W) uint8 0/1 mask."""
    if isinstance(segm, list):
        if not segm:
            raise ValueError(f'{source}: empty polygon list in "segmentation"')
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm, dict) and 'counts' in segm:
        rle = segm
        if isinstance(segm['counts'], list):
            rle = mask_utils.frPyObjects(segm, height, width)
    else:
        raise ValueError(f'{source}: "segmentation" is neither polygons nor RLE: {segm!r:.80}')
    mask = mask_utils.decode(rle)
    if mask.shape != (height, width):
        raise ValueError(f'{source}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH), image is '
                         f'{width}x{height}')
    return mask.astype(np.uint8)


@TRANSFORMS.register_module()
class LoadReferringMask(BaseTransform):
    """Decode the referred object's COCO ``segmentation`` into
    ``results['gt_seg_map']`` (0/1 uint8, the image's original size), so
    geometric transforms and ``PackFusionInputs`` treat it as a segmentation
    map (packed into ``gt_sem_seg``)."""

    def transform(self, results: dict) -> dict:
        if 'segmentation' not in results:
            raise KeyError(f'LoadReferringMask needs "segmentation" in the results of '
                           f'{results.get("img_path")}; use RefCocoDataset')
        h, w = results['height'], results['width']
        results['gt_seg_map'] = decode_coco_segmentation(
            results['segmentation'], h, w, source=f'ref {results.get("ref_id")}')
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results


@TRANSFORMS.register_module()
class SampleReferringExpression(BaseTransform):
    """Pick one referring expression of the image for grounding.

    Reads ``results['gt_refs']`` (from ``CocoPanopticCaptionDataset`` with a
    refs file: per referred object its ``sentences`` and COCO
    ``segmentation``) and writes ``text`` (the sentence, packed into the
    model inputs) and ``gt_ref_mask`` (0/1 uint8 at the current
    ``img_shape``, resized with nearest neighbours when it follows a
    ``Resize``; packed into ``data_sample.gt_ref_mask``). Only resizes may
    come before it: a flip (which also breaks "the leftmost ..." or "... left
    of ...") or a crop is refused.

    Args:
        random (bool): A random object and sentence (training); otherwise
            the first sentence of the first object (reproducible evaluation).
    """

    def __init__(self, random: bool = True) -> None:
        self.random = random

    def transform(self, results: dict) -> dict:
        refs = results.get('gt_refs')
        if not refs:
            raise KeyError(f'SampleReferringExpression: {results.get("img_path")} has no '
                           '"gt_refs"; give the dataset refs_file and refs_instances_file')
        if self.random:
            ref = refs[np.random.randint(len(refs))]
            text = ref['sentences'][np.random.randint(len(ref['sentences']))]
        else:
            ref, text = refs[0], refs[0]['sentences'][0]
        h, w = results['ori_shape'][:2] if 'ori_shape' in results else (results['height'],
                                                                         results['width'])
        mask = decode_coco_segmentation(ref['segmentation'], h, w,
                                        source=f'ref {ref.get("ref_id")}')
        img_h, img_w = results.get('img_shape', (h, w))[:2]
        if results.get('flip') or abs(img_h / img_w - h / w) > 0.05:
            raise ValueError(f'SampleReferringExpression on {results.get("img_path")}: only '
                             'resizes may come before it (a flip or crop was applied: '
                             f'flip={results.get("flip")}, {(h, w)} -> {(img_h, img_w)})')
        if (img_h, img_w) != (h, w):  # after a resize: follow the image
            mask = mmcv.imresize(mask, (img_w, img_h), interpolation='nearest')
        results['text'] = text
        results['gt_ref_mask'] = mask
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(random={self.random})'
