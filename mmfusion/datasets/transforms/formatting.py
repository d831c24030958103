from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import InstanceData, PixelData

from mmfusion.registry import TRANSFORMS
from mmfusion.structures import FusionDataSample


def _to_tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.from_numpy(np.ascontiguousarray(value))


@TRANSFORMS.register_module()
class PackFusionInputs(BaseTransform):
    """Pack one sample into ``{'inputs': {modality: data}, 'data_samples': ...}``.

    Modalities found in ``results`` are packed, each in the layout its
    sub-preprocessor expects:

    - ``img``: HWC (or HW) array -> CHW tensor (channel order unchanged).
    - ``audio``: 1-D or (C, T) waveform array -> float tensor.
    - ``points``: (N, C) array -> float tensor.
    - ``text``: str or list of str, passed through.

    ``gt_seg_map`` becomes ``data_sample.gt_sem_seg`` (1xHxW long) and
    ``gt_label`` becomes ``data_sample.gt_label`` (a long tensor).
    ``gt_bboxes``/``gt_bboxes_labels``/``gt_masks`` (mmdet loaders) become
    ``data_sample.gt_instances`` (``bboxes``, ``labels``, ``masks`` as an
    (N, H, W) bool tensor), ``gt_caption`` (list of str) is copied and
    ``gt_ref_mask`` (a referred object's mask) becomes
    ``data_sample.gt_ref_mask`` (1xHxW bool) and ``prompts`` (a dict of
    per-object tensors, from ``GeneratePrompts``) becomes
    ``data_sample.prompts`` (InstanceData); ``gt_alpha`` (float in [0, 1]) and
    ``gt_trimap`` (0 / 128 / 255) become 1xHxW ``PixelData`` of the same names.
    """

    MODALITIES = ('img', 'audio', 'points', 'text')

    def __init__(self,
                 meta_keys: Sequence[str] = ('sample_id', 'sample_idx', 'img_path', 'seg_map_path',
                                             'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                             'flip_direction', 'audio_path', 'sample_rate',
                                             'audio_length', 'points_path', 'num_points', 'img_id',
                                             'segments_info', 'segm_file', 'ref_id', 'alpha_path',
                                             'trimap_path', 'alpha_box')
                 ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        inputs = {}
        if 'img' in results:
            img = results['img']
            if img.ndim == 2:
                img = img[..., None]
            inputs['img'] = _to_tensor(img.transpose(2, 0, 1))
        if 'audio' in results:
            inputs['audio'] = _to_tensor(results['audio']).float()
        if 'points' in results:
            inputs['points'] = _to_tensor(results['points']).float()
        if 'text' in results:
            inputs['text'] = results['text']
        if not inputs:
            raise KeyError(f'PackFusionInputs found none of {self.MODALITIES} in the results '
                           f'(keys: {sorted(results)})')

        data_sample = FusionDataSample()
        if 'gt_seg_map' in results:
            seg = _to_tensor(results['gt_seg_map'].astype(np.int64))
            data_sample.gt_sem_seg = PixelData(data=seg[None])
        if 'gt_bboxes_labels' in results or 'gt_masks' in results:
            instances = InstanceData()
            if 'gt_bboxes' in results:
                boxes = results['gt_bboxes']
                instances.bboxes = torch.as_tensor(np.asarray(getattr(boxes, 'tensor', boxes)),
                                                   dtype=torch.float32).reshape(-1, 4)
            if 'gt_bboxes_labels' in results:
                instances.labels = _to_tensor(np.asarray(results['gt_bboxes_labels'], np.int64))
            if 'gt_masks' in results:
                masks = results['gt_masks']
                masks = masks.to_ndarray() if hasattr(masks, 'to_ndarray') else np.asarray(masks)
                instances.masks = _to_tensor(masks.astype(bool))
            data_sample.gt_instances = instances
        if 'gt_ref_mask' in results:
            data_sample.gt_ref_mask = PixelData(
                data=torch.from_numpy(np.ascontiguousarray(results['gt_ref_mask'])).bool()[None])
        if 'prompts' in results:
            data_sample.prompts = InstanceData(**results['prompts'])
        for key in ('gt_alpha', 'gt_trimap'):  # LoadMattingAnnotations
            if key in results:
                data_sample.set_field(
                    PixelData(data=torch.from_numpy(np.ascontiguousarray(results[key]))[None]), key)
        if 'gt_caption' in results:
            data_sample.gt_caption = list(results['gt_caption'])
        if 'gt_label' in results:
            data_sample.gt_label = torch.as_tensor(results['gt_label'], dtype=torch.long)
        data_sample.set_metainfo({k: results[k] for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
