"""Segment Anything as a trainable mmfusion model."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData, PixelData
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from mmfusion.models.common import FusionBaseModel
from mmfusion.models.encoders.vision import SAMImageEncoder, build_sam_parts
from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample
from mmfusion.structures.prompt_sampling import corrective_points, evaluation_click
from mmfusion.utils.dependency import require

from .automatic_mask_generator import SAMAutomaticMaskGenerator

_TRAIN_DEFAULTS = dict(num_points=8, num_mask_only=2, max_objects=None,
                       multimask_for_point=True, focal_weight=20.0, dice_weight=1.0,
                       iou_weight=1.0)
_TEST_DEFAULTS = dict(mode='prompt', num_clicks=0, multimask='auto', return_click_ious=True,
                      return_logits=False, auto_cfg=dict())


def _dice_loss(logits: Tensor, targets: Tensor, eps: float = 1.0) -> Tensor:
    """Per-mask soft Dice loss, (N, ...) -> (N,)."""
    probs = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    inter = (probs * targets).sum(1)
    return 1 - (2 * inter + eps) / (probs.sum(1) + targets.sum(1) + eps)


# torch.compile: excluded, the clicks come from scipy's distance transform on numpy masks.
@torch.compiler.disable
def _evaluation_clicks(pred: Tensor, gt: Tensor) -> Tuple[Tensor, Tensor]:
    """The next evaluation click of each object (:func:`evaluation_click`):
    points (N, 2) float and labels (N,) long on ``gt``'s device."""
    clicks = [evaluation_click(p, g) for p, g in zip(pred.cpu().numpy(), gt.cpu().numpy())]
    points = torch.tensor([c[0] for c in clicks], dtype=torch.float, device=gt.device)
    labels = torch.tensor([c[1] for c in clicks], dtype=torch.long, device=gt.device)
    return points.reshape(-1, 2), labels


def _group_points(points: Tensor, labels: Tensor, idx: Tensor
                  ) -> Optional[Tuple[Tensor, Tensor]]:
    """The point prompts of objects ``idx`` without the columns that are
    padding (-1) for all of them; None when no point is left."""
    points, labels = points[idx], labels[idx]
    used = (labels >= 0).any(0)
    if not used.any():
        return None
    return points[:, used], labels[:, used]


def _mask_iou(pred: Tensor, gt: Tensor) -> Tensor:
    """IoU of (N, ...) bool masks, (N,); an empty union counts as 1."""
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@MODELS.register_module()
class SAM(FusionBaseModel):
    """Segment Anything (Kirillov et al., ICCV 2023) on ``segment_anything``'s
    own ``ImageEncoderViT``, ``PromptEncoder`` and ``MaskDecoder``.

    Args:
        arch: a key of :data:`SAM_MODEL_ARCHS` (``'vit_b'``, ``'vit_l'``,
            ``'vit_h'``, ``'tiny'``).
        img_size: the image encoder's input side (1024 for the official
            weights). Images are resized so their longer side is
            ``img_size`` and padded bottom-right (the data preprocessor's
            ``pad_size_divisor=img_size``), as ``Sam.preprocess``.
        checkpoint: an official ``sam_vit_*.pth`` or an mmfusion checkpoint
            of a SAM; every part is loaded strictly, before freezing or LoRA.
        image_encoder, prompt_encoder, mask_decoder: options of each part's
            freezing mechanism (:class:`BaseEncoder`: ``frozen``,
            ``trainable_modules``, ``lora``, ``frozen_dtype``); all parts
            train by default.
        train_cfg: the simulated interaction (paper, appendix A) after the
            first prompt (drawn by ``GeneratePrompts`` in the pipeline):
            ``num_points`` corrective points (8) and
            ``num_mask_only`` iterations that only feed the previous mask
            back (2: one at a random step, one last); ``max_objects`` per
            image (None: all); ``multimask_for_point``: three outputs for a
            lone point, only the lowest-loss one supervised; loss weights
            ``focal_weight`` (20), ``dice_weight`` (1), ``iou_weight`` (1).
        test_cfg: ``mode``: ``'prompt'`` (segment the prompted objects) or
            ``'auto'`` (every mask of the image through
            :class:`SAMAutomaticMaskGenerator` with ``auto_cfg``);
            ``num_clicks`` corrective clicks after the given prompt,
            simulated from the ground truth; ``return_click_ious`` records
            the IoU after the prompt and each click as
            ``pred_instances.click_ious`` when ground truth is present;
            ``multimask``: ``'auto'`` (three outputs for a lone point, the
            best-scored one kept, as SAM recommends), True or False;
            ``return_logits`` keeps the mask logits at the original size as
            ``pred_instances.logits``.
        data_preprocessor: normally ``MultiModalDataPreprocessor`` with an
            ``ImgDataPreprocessor`` using :attr:`SAMImageEncoder.mean`/``std``.

    Prompts come in each data sample's ``prompts`` (an ``InstanceData``, one
    row per object, in input-image pixels, i.e. after the pipeline's resize):
    ``boxes`` (N, 4) ``x1 y1 x2 y2`` with ``has_box`` (N,) bool,
    ``points`` (N, K, 2) ``(x, y)`` with ``point_labels`` (N, K) (1
    foreground, 0 background, -1 padding) and optionally ``mask_inputs``
    (N, 1, 4h, 4w) low-res logits of an earlier prediction.
    """

    def __init__(self,
                 arch: str = 'vit_b',
                 img_size: int = 1024,
                 checkpoint: Optional[str] = None,
                 image_encoder: Optional[dict] = None,
                 prompt_encoder: Optional[dict] = None,
                 mask_decoder: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.arch = arch
        unknown = set(train_cfg or {}) - set(_TRAIN_DEFAULTS)
        unknown |= set(test_cfg or {}) - set(_TEST_DEFAULTS)
        if unknown:
            raise KeyError(f'SAM: unknown train_cfg/test_cfg keys {sorted(unknown)}; train_cfg '
                           f'takes {sorted(_TRAIN_DEFAULTS)}, test_cfg {sorted(_TEST_DEFAULTS)}')
        self.train_cfg = {**_TRAIN_DEFAULTS, **(train_cfg or {})}
        self.test_cfg = {**_TEST_DEFAULTS, **(test_cfg or {})}
        if self.test_cfg['mode'] not in ('prompt', 'auto'):
            raise ValueError(f"SAM: test_cfg.mode must be 'prompt' or 'auto', got "
                             f"{self.test_cfg['mode']!r}")
        self.image_encoder, self.prompt_encoder, self.mask_decoder = build_sam_parts(
            arch, img_size, checkpoint, owner='SAM',
            image_encoder={'frozen': False, **(image_encoder or {})},
            prompt_encoder=prompt_encoder, mask_decoder=mask_decoder)
        self.img_size = img_size
        self.grid = img_size // self.image_encoder.patch_size

    # -- shared pieces -------------------------------------------------------
    def as_segment_anything(self):
        """A ``segment_anything.modeling.Sam`` sharing this model's modules
        (for ``SamPredictor`` / ``SamAutomaticMaskGenerator``). Not stored,
        so the weights appear once in this model's state dict; the modules
        keep their train/eval mode."""
        modeling = require('segment_anything.modeling', 'SAM.as_segment_anything',
                           'segment-anything')
        sam = modeling.Sam(image_encoder=self.image_encoder.image_encoder,
                           prompt_encoder=self.prompt_encoder.prompt_encoder,
                           mask_decoder=self.mask_decoder.mask_decoder,
                           pixel_mean=list(SAMImageEncoder.mean),
                           pixel_std=list(SAMImageEncoder.std))
        return sam.to(next(self.parameters()).device)

    def embed_images(self, img: Tensor, data_samples: List[FusionDataSample]) -> Tensor:
        """(B, C, h, w) image embeddings, from the feature cache when one is
        attached to a frozen image encoder."""
        if tuple(img.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(f'SAM expects images padded to {self.img_size}x{self.img_size} '
                             f'(data preprocessor pad_size_divisor={self.img_size} after a '
                             f'longest-side resize), got {tuple(img.shape[-2:])}')
        ids = self.image_encoder.cache_ids(data_samples)
        return self.image_encoder.forward_cached(img, ids, keys=['embed'])['embed']

    # torch.compile: excluded. The number of prompt tokens grows with every
    # corrective click, and with torch 2.9.1 the backward of the mask
    # decoder's token attention, recompiled for a new count (dynamic shapes),
    # fails inductor's stride assertion ("expected size 15==15, stride
    # 576==640"; benchmark_compile on the tiny SAM recipe). The image encoder,
    # most of a step, stays compiled.
    @torch.compiler.disable
    def decode(self, embeddings: Tensor, points: Optional[Tuple[Tensor, Tensor]],
               boxes: Optional[Tensor], mask_inputs: Optional[Tensor],
               multimask: bool) -> Tuple[Tensor, Tensor]:
        """Prompt encoder + mask decoder for N objects sharing one prompt
        layout; ``embeddings`` is (N, C, h, w) or (1, C, h, w).

        Returns low-res logits (N, M, 4h, 4w) and predicted IoUs (N, M)."""
        sparse, dense = self.prompt_encoder(points, boxes, mask_inputs)
        return self.mask_decoder(embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense,
                                 multimask)

    def upscale(self, low_res: Tensor) -> Tensor:
        """Low-res logits -> logits at the padded input size (the first step
        of ``Sam.postprocess_masks``)."""
        return F.interpolate(low_res, (self.img_size, self.img_size), mode='bilinear',
                             align_corners=False)

    @staticmethod
    def check_prompts(sample: FusionDataSample, img_hw: Tuple[int, int]) -> InstanceData:
        """The sample's prompts, checked against its (resized) image size.

        Raises:
            KeyError: the sample has no prompts.
            ValueError: naming the sample, for a box outside the image or
                with x2 <= x1 / y2 <= y1, a point outside the image, or a
                point label other than 1, 0 (or -1 for padding).
        """
        def name() -> str:  # read for messages only (torch.compile would guard the path string)
            return sample.metainfo.get('img_path') or f'sample {sample.metainfo.get("sample_idx")}'

        if 'prompts' not in sample:
            raise KeyError(f'SAM needs prompts for {name()} (GeneratePrompts in the pipeline, or '
                           'data_sample.prompts = build_prompts(...))')
        prompts = sample.prompts
        h, w = img_hw
        boxes = prompts.boxes[prompts.has_box]
        bad = ((boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
               | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
        if bad.any():
            raise ValueError(f'{name()}: box prompts {boxes[bad].tolist()} are empty or outside '
                             f'the {w}x{h} input image (x1 y1 x2 y2, input pixels)')
        if 'points' in prompts:
            labels = prompts.point_labels
            wrong = labels[(labels < -1) | (labels > 1)]
            if len(wrong):
                raise ValueError(f'{name()}: point labels must be 1 (foreground), 0 (background) '
                                 f'or -1 (padding), got {sorted(set(wrong.tolist()))}')
            pts = prompts.points[labels >= 0]
            out = (pts[:, 0] < 0) | (pts[:, 1] < 0) | (pts[:, 0] >= w) | (pts[:, 1] >= h)
            if out.any():
                raise ValueError(f'{name()}: point prompts {pts[out].tolist()} are outside the '
                                 f'{w}x{h} input image')
        return prompts

    # -- training -------------------------------------------------------------
    def _gather_objects(self, data_samples: List[FusionDataSample], limit: Optional[int]
                        ) -> Tuple[Tensor, Tensor, InstanceData]:
        """Objects of the batch: image index (N,), ground-truth masks padded
        to the input size (N, S, S) and their prompts."""
        image_idx, masks, prompts = [], [], []
        for i, sample in enumerate(data_samples):
            if 'gt_instances' not in sample or 'masks' not in sample.gt_instances:
                raise KeyError(f'SAM needs gt_instances.masks in the data samples; '
                               f'{sample.metainfo.get("img_path")} has {sorted(sample.keys())}')
            gt = sample.gt_instances
            prompt = self.check_prompts(sample, tuple(gt.masks.shape[-2:]))
            keep = torch.arange(len(gt), device=gt.masks.device)
            if limit is not None and len(keep) > limit:
                keep = keep[torch.randperm(len(keep), device=keep.device)[:limit]]
            m = gt.masks[keep]
            h, w = m.shape[-2:]
            masks.append(F.pad(m, (0, self.img_size - w, 0, self.img_size - h)))
            prompts.append(prompt[keep])
            image_idx.append(torch.full((len(keep), ), i, device=m.device))
        return torch.cat(image_idx), torch.cat(masks), InstanceData.cat(prompts)

    # torch.compile: excluded, a random schedule of Python strings (int() of a torch draw).
    @torch.compiler.disable
    def _schedule(self) -> List[str]:
        """Kinds of the iterations after the first prompt: ``'point'`` adds a
        corrective point, ``'mask'`` only feeds the previous mask back (one
        at a random step among the points, the rest at the end)."""
        steps = ['point'] * self.train_cfg['num_points']
        num_mask = self.train_cfg['num_mask_only']
        if num_mask:
            # torch's RNG: its state is checkpointed, so a resumed run continues exactly
            steps.insert(int(torch.randint(len(steps) + 1, ())), 'mask')
            steps += ['mask'] * (num_mask - 1)
        return steps

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        cfg = self.train_cfg
        embeddings = self.embed_images(inputs['img'], data_samples)
        image_idx, gt, prompts = self._gather_objects(data_samples, cfg['max_objects'])
        n = len(gt)
        if n == 0:
            raise ValueError('SAM.loss: the batch has no objects')
        gt_float = gt.float()
        has_box = prompts.has_box
        points, labels = prompts.points, prompts.point_labels
        mask_inputs: Optional[Tensor] = None
        pred = gt  # replaced by the first prediction before any corrective point
        losses = dict(loss_focal=0., loss_dice=0., loss_iou=0.)
        steps = [None] + self._schedule()
        for step in steps:
            if step == 'point':
                new_p, new_l = corrective_points(pred, gt)
                points = torch.cat([points, new_p[:, None]], 1)
                labels = torch.cat([labels, new_l[:, None]], 1)
            logits = gt_float.new_zeros((n, self.img_size, self.img_size))
            low_res = gt_float.new_zeros((n, 1, 4 * self.grid, 4 * self.grid))
            it_losses = {k: gt_float.new_zeros(n) for k in losses}
            for group in (has_box, ~has_box):
                idx = group.nonzero().squeeze(1)
                if not len(idx):
                    continue
                pts = _group_points(points, labels, idx)
                boxes = prompts.boxes[idx] if bool(has_box[idx[0]]) else None
                lone_point = (step is None and boxes is None and pts is not None
                              and pts[1].shape[1] == 1)
                low, iou_pred = self.decode(
                    embeddings[image_idx[idx]], pts, boxes,
                    None if mask_inputs is None else mask_inputs[idx],
                    lone_point and cfg['multimask_for_point'])
                up = self.upscale(low)
                target = gt_float[idx, None].expand_as(up)
                focal = sigmoid_focal_loss(up, target, reduction='none').flatten(2).mean(2)
                dice = _dice_loss(up.flatten(0, 1), target.flatten(0, 1)).view_as(focal)
                mask_loss = cfg['focal_weight'] * focal + cfg['dice_weight'] * dice
                real_iou = _mask_iou((up > 0).flatten(0, 1),
                                     target.flatten(0, 1).bool()).view_as(focal)
                # only the lowest-loss output of a multimask prediction is
                # supervised (SAM, sec. 3); every IoU prediction is.
                best = mask_loss.argmin(1)
                rows = torch.arange(len(idx), device=best.device)
                it_losses['loss_focal'][idx] = focal[rows, best]
                it_losses['loss_dice'][idx] = dice[rows, best]
                it_losses['loss_iou'][idx] = F.mse_loss(iou_pred, real_iou,
                                                        reduction='none').mean(1)
                # feed back (and click on) the output SAM itself would pick
                pick = iou_pred.argmax(1)
                low_res[idx] = low[rows, pick][:, None].detach()
                logits[idx] = up[rows, pick].detach()
            mask_inputs = low_res
            pred = logits > 0
            for k in losses:
                losses[k] = losses[k] + it_losses[k].mean()
        weights = dict(loss_focal=cfg['focal_weight'], loss_dice=cfg['dice_weight'],
                       loss_iou=cfg['iou_weight'])
        return {k: weights[k] * v / len(steps) for k, v in losses.items()}

    # -- inference ---------------------------------------------------------------
    def _predict_objects(self, embedding: Tensor, prompts: InstanceData,
                         multimask: Union[bool, str]) -> Tuple[Tensor, Tensor]:
        """Best low-res logits (N, 1, 4h, 4w) and their predicted IoU (N,) for
        the objects of one image (each prompt layout decoded separately)."""
        n = len(prompts)
        out_low = embedding.new_zeros((n, 1, 4 * self.grid, 4 * self.grid))
        out_iou = embedding.new_zeros(n)
        has_box = prompts.has_box
        for group in (has_box, ~has_box):
            idx = group.nonzero().squeeze(1)
            if not len(idx):
                continue
            pts = None
            if 'points' in prompts:
                pts = _group_points(prompts.points, prompts.point_labels, idx)
            boxes = prompts.boxes[idx] if bool(has_box[idx[0]]) else None
            if pts is None and boxes is None:
                raise ValueError('SAM: an object has neither a box nor a point prompt')
            masks = prompts.mask_inputs[idx] if 'mask_inputs' in prompts else None
            if multimask == 'auto':
                use_multi = boxes is None and masks is None and pts[1].shape[1] == 1
            else:
                use_multi = bool(multimask)
            low, iou_pred = self.decode(embedding, pts, boxes, masks, use_multi)
            pick = iou_pred.argmax(1)
            rows = torch.arange(len(idx), device=pick.device)
            out_low[idx] = low[rows, pick][:, None]
            out_iou[idx] = iou_pred[rows, pick]
        return out_low, out_iou

    def _click(self, embedding: Tensor, prompts: InstanceData, gt: Tensor,
               low: Tensor, img_hw: Tuple[int, int]) -> Tuple[Tensor, Tensor, Tensor]:
        """``test_cfg.num_clicks`` evaluation clicks (see
        :func:`evaluation_click`); returns the last logits and IoU
        predictions, and per object the IoU after the prompt and each click."""
        h, w = img_hw
        pred = (self.upscale(low)[:, 0, :h, :w] > 0)
        ious = [_mask_iou(pred, gt)]
        prompts = prompts.clone()
        if 'points' not in prompts:
            prompts.points = gt.new_zeros((len(gt), 0, 2), dtype=torch.float)
            prompts.point_labels = gt.new_zeros((len(gt), 0), dtype=torch.long)
        iou_pred = None
        for _ in range(self.test_cfg['num_clicks']):
            new_p, new_l = _evaluation_clicks(pred, gt)
            prompts.points = torch.cat([prompts.points, new_p[:, None]], 1)
            prompts.point_labels = torch.cat([prompts.point_labels, new_l[:, None]], 1)
            prompts.mask_inputs = low
            low, iou_pred = self._predict_objects(embedding, prompts, multimask=False)
            pred = (self.upscale(low)[:, 0, :h, :w] > 0)
            ious.append(_mask_iou(pred, gt))
        return low, iou_pred, torch.stack(ious, 1)

    # torch.compile: excluded, segment_anything's mask generator works on numpy (crops, RLE, NMS).
    @torch.compiler.disable
    def _predict_auto(self, img: Tensor, data_samples: List[FusionDataSample]
                      ) -> List[FusionDataSample]:
        """Every mask of each image (``test_cfg.mode='auto'``), at ``ori_shape``."""
        generator = SAMAutomaticMaskGenerator(self, **self.test_cfg['auto_cfg'])
        preprocessors = getattr(self.data_preprocessor, 'preprocessors', {})
        img_pre = preprocessors['img'] if 'img' in preprocessors else None
        if img_pre is None or not getattr(img_pre, '_enable_normalize', False):
            raise ValueError('SAM automatic masks need the images normalised by the data '
                             "preprocessor's 'img' ImgDataPreprocessor (mean/std) to undo it")
        raw = (img * img_pre.std + img_pre.mean).round().clamp(0, 255).to(torch.uint8)
        for image, sample in zip(raw, data_samples):
            h, w = sample.metainfo.get('img_shape', image.shape[-2:])[:2]
            ori_hw = tuple(sample.metainfo.get('ori_shape', (h, w))[:2])
            result = generator.generate_instances(image[:, :h, :w].permute(1, 2, 0).cpu().numpy())
            if (h, w) != ori_hw and len(result):
                result.masks = F.interpolate(result.masks[:, None].float(), ori_hw,
                                             mode='nearest')[:, 0].bool()
                result.bboxes = result.bboxes * result.bboxes.new_tensor(
                    [ori_hw[1] / w, ori_hw[0] / h] * 2)
            sample.pred_instances = result.to(img.device)
        return data_samples

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                ) -> List[FusionDataSample]:
        img = inputs['img']
        data_samples = self.fill_data_samples(data_samples, len(img))
        if self.test_cfg['mode'] == 'auto':
            return self._predict_auto(img, data_samples)
        embeddings = self.embed_images(img, data_samples)
        sam = self.as_segment_anything()
        for embedding, sample in zip(embeddings, data_samples):
            h, w = sample.metainfo.get('img_shape', img.shape[-2:])[:2]
            ori_hw = sample.metainfo.get('ori_shape', (h, w))[:2]
            prompts = self.check_prompts(sample, (h, w))
            low, iou_pred = self._predict_objects(embedding[None], prompts,
                                                  self.test_cfg['multimask'])
            result = InstanceData()
            has_gt = 'gt_instances' in sample and 'masks' in sample.gt_instances
            if has_gt and (self.test_cfg['num_clicks'] or self.test_cfg['return_click_ious']):
                gt = sample.gt_instances.masks.to(low.device)
                if tuple(gt.shape[-2:]) != (h, w):
                    raise ValueError(f'{sample.metainfo.get("img_path")}: gt_instances.masks are '
                                     f'{tuple(gt.shape[-2:])}, the resized image is {(h, w)}')
                clicked_low, clicked_iou, click_ious = self._click(embedding[None], prompts, gt,
                                                                   low, (h, w))
                if self.test_cfg['num_clicks']:
                    low, iou_pred = clicked_low, clicked_iou
                result.click_ious = click_ious
            logits = sam.postprocess_masks(low, (h, w), tuple(ori_hw))[:, 0]
            result.masks = logits > sam.mask_threshold
            if self.test_cfg['return_logits']:
                result.logits = logits
            result.scores = iou_pred
            result.labels = torch.zeros(len(low), dtype=torch.long, device=low.device)
            sample.pred_instances = result
            union = result.masks.any(0, keepdim=True) if len(low) else \
                logits.new_zeros((1, ) + tuple(ori_hw), dtype=torch.bool)
            sample.pred_sem_seg = PixelData(data=union.long())
        return data_samples

    def _forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                 ) -> Tensor:
        """The image embeddings (B, C, h, w)."""
        samples = self.fill_data_samples(data_samples, len(inputs['img']))
        return self.embed_images(inputs['img'], samples)
