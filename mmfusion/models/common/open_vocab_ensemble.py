"""Out-of-vocabulary classification by a frozen CLIP, and its geometric
ensemble with a segmentation decoder's own (in-vocabulary) class scores.

FC-CLIP introduced it and FrozenSeg keeps it: the decoder's classifier is
trained on the seen classes and is over-confident on them; the frozen CLIP
never saw the segmentation data and ranks unseen classes better. Each mask
is average-pooled on CLIP's dense feature map and classified by CLIP's own
head against the same class-name embeddings; the two distributions are mixed
geometrically, leaning on CLIP for classes the decoder never trained on.

Any mask decoder with class logits, mask logits and an ``OpenCLIPImageEncoder``
can use it (FrozenSeg always; X-Decoder by its model's ``clip_ensemble`` switch).
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from mmfusion.models.encoders.text.prompt_templates import get_templates
from mmfusion.registry import MODELS
from mmfusion.utils import load_state_dict_file

_EPS = 1e-8


def split_synonyms(classes: Sequence[str], sep: str = ',') -> Tuple[List[str], Tensor]:
    """``'person, child'`` -> its synonyms as separate names.

    Returns the flat list of names and, per name, the index of its class: a
    class scores the maximum over its synonyms (FrozenSeg / FC-CLIP).
    """
    names, owner = [], []
    for i, cls in enumerate(classes):
        syns = [s.strip() for s in str(cls).split(sep) if s.strip()]
        if not syns:
            raise ValueError(f'class {i} ({cls!r}) is empty: every class needs a name')
        names += syns
        owner += [i] * len(syns)
    return names, torch.tensor(owner, dtype=torch.long)


def max_over_synonyms(logits: Tensor, owner: Tensor, num_classes: int) -> Tensor:
    """(..., S) logits of the synonyms -> (..., C) logits of their classes
    (maximum over each class's synonyms)."""
    if logits.shape[-1] == num_classes:
        return logits
    out = logits.new_full((*logits.shape[:-1], num_classes), float('-inf'))
    index = owner.to(logits.device).expand_as(logits)
    return out.scatter_reduce(-1, index, logits, reduce='amax', include_self=True)


def binary_mask_pool(features: Tensor, mask_logits: Tensor) -> Tuple[Tensor, Tensor]:
    """Average of a dense map over each binarised mask (FC-CLIP's and
    FrozenSeg's pooling of predicted mask logits; the region-text
    pretrainer's ``mask_pool`` instead weights ground-truth masks by their
    area-resized coverage).

    Args:
        features: (B, C, h, w) dense map.
        mask_logits: (B, Q, H, W) mask logits at any size; resized
            bilinearly to (h, w), then binarised at 0.

    Returns:
        pooled (B, Q, C) and valid (B, Q) bool: whether the binarised mask
        covers at least one cell (an empty mask pools to zeros).
    """
    masks = F.interpolate(mask_logits.float(), size=features.shape[-2:], mode='bilinear',
                          align_corners=False)
    masks = (masks > 0).to(features.dtype)
    area = masks.flatten(2).sum(-1)
    pooled = torch.einsum('bchw,bqhw->bqc', features, masks / (area[..., None, None] + _EPS))
    return pooled, area > 0


def geometric_ensemble(in_vocab_logits: Tensor, out_vocab_logits: Tensor, seen: Tensor,
                       alpha: float = 0.4, beta: float = 0.8,
                       valid: Optional[Tensor] = None) -> Tensor:
    """FC-CLIP's geometric ensemble, as FrozenSeg uses it.

    With ``p_in = softmax(in_vocab_logits[..., :C])`` (the decoder's class
    distribution without the no-object column) and
    ``p_out = softmax(out_vocab_logits)`` (CLIP's), every class gets
    ``p_in^(1-a) * p_out^a`` with ``a = alpha`` for seen classes and
    ``a = beta`` for unseen ones (``a = 0`` for masks that are not
    ``valid``); the result is renormalised over the classes and scaled by
    ``1 - p_void``, where ``p_void`` is the no-object probability of
    ``softmax(in_vocab_logits)``, which stays last.

    Args:
        in_vocab_logits: (..., C + 1), no object last.
        out_vocab_logits: (..., C).
        seen: (C,) bool, the classes the decoder was trained on.
        alpha, beta: CLIP's weight for seen / unseen classes.
        valid: (...) bool, masks CLIP could pool (others keep ``p_in``).

    Returns:
        (..., C + 1) log-probabilities (``log(p + 1e-8)``), a drop-in
        replacement of the class logits for softmax-based post-processing.
    """
    num_classes = out_vocab_logits.shape[-1]
    if in_vocab_logits.shape[-1] != num_classes + 1:
        raise ValueError(f'in-vocabulary logits need C + 1 = {num_classes + 1} columns '
                         f'(no object last), got {in_vocab_logits.shape[-1]}')
    if seen.shape != (num_classes, ):
        raise ValueError(f'seen must be a ({num_classes},) bool mask, got {tuple(seen.shape)}')
    in_vocab_logits, out_vocab_logits = in_vocab_logits.float(), out_vocab_logits.float()
    log_p_in = in_vocab_logits[..., :num_classes].log_softmax(-1)
    log_p_out = out_vocab_logits.log_softmax(-1)
    weight = torch.where(seen.to(log_p_in.device), torch.tensor(alpha), torch.tensor(beta))
    weight = weight.to(log_p_in).expand_as(log_p_in)
    if valid is not None:
        weight = weight * valid[..., None].to(weight)
    mixed = ((1 - weight) * log_p_in + weight * log_p_out).softmax(-1)
    void = in_vocab_logits.softmax(-1)[..., -1:]
    return torch.log(torch.cat([mixed * (1 - void), void], dim=-1) + _EPS)


def clip_mask_logits(clip_encoder: nn.Module, text_encoder: nn.Module, templates: Sequence[str],
                     dense_map: Tensor, mask_logits: Tensor, classes: Sequence[str],
                     logit_scale: Tensor) -> Tuple[Tensor, Tensor]:
    """CLIP's own classification of one image's masks.

    Args:
        clip_encoder: an ``OpenCLIPImageEncoder`` (its ``embed_pooled``
            applies CLIP's head to pooled features of its last map).
        text_encoder: the same CLIP's ``OpenCLIPTextEncoder``.
        templates: prompt templates for the class names.
        dense_map: (C, h, w) the tower's last map (before the head).
        mask_logits: (Q, H, W), binarised at 0 after resizing to (h, w).
        classes: C class names, synonyms comma-separated (a class scores
            its best synonym).
        logit_scale: CLIP's temperature (``exp`` applied).

    Returns:
        (Q, C) logits and (Q,) flags of the masks that cover a cell.
    """
    names, owner = split_synonyms(classes)
    text = text_encoder.embed_class_names(names, templates)
    pooled, valid = binary_mask_pool(dense_map[None], mask_logits[None])
    embeds = F.normalize(clip_encoder.embed_pooled(pooled[0]).float(), dim=-1)
    logits = logit_scale * embeds @ text.float().t()
    return max_over_synonyms(logits, owner, len(classes)), valid[0]


@MODELS.register_module()
class OpenVocabEnsemble(nn.Module):
    """Mask-pooled frozen-CLIP classification + :func:`geometric_ensemble`.

    Args:
        alpha: CLIP's weight on seen classes (0.4).
        beta: CLIP's weight on unseen classes (0.8).
        seen_classes: the class names the decoder was trained on; a class
            is seen when its name (any synonym) is in this list. ``None``:
            every class is unseen.
        ensemble_on_valid_mask: masks that vanish at CLIP's resolution keep
            the decoder's scores (FC-CLIP's option; off in FrozenSeg's
            ConvNeXt configs, where an empty mask pools to zeros).
    """

    def __init__(self, alpha: float = 0.4, beta: float = 0.8,
                 seen_classes: Optional[Sequence[str]] = None,
                 ensemble_on_valid_mask: bool = False) -> None:
        super().__init__()
        for name, value in (('alpha', alpha), ('beta', beta)):
            if not 0 <= value <= 1:
                raise ValueError(f'OpenVocabEnsemble: {name} must be in [0, 1], got {value}')
        self.alpha, self.beta = float(alpha), float(beta)
        self.seen_names = None
        if seen_classes is not None:
            self.seen_names = {s for c in seen_classes for s in split_synonyms([c])[0]}
        self.ensemble_on_valid_mask = ensemble_on_valid_mask

    def seen_flags(self, classes: Sequence[str]) -> Tensor:
        """(C,) bool: which of ``classes`` the decoder was trained on."""
        if self.seen_names is None:
            return torch.zeros(len(classes), dtype=torch.bool)
        return torch.tensor([any(s in self.seen_names for s in split_synonyms([c])[0])
                             for c in classes], dtype=torch.bool)

    def forward(self, in_vocab_logits: Tensor, out_vocab_logits: Tensor, classes: Sequence[str],
                valid: Optional[Tensor] = None) -> Tensor:
        """(Q, C + 1) decoder logits, (Q, C) CLIP logits of one image's
        ``classes`` -> (Q, C + 1) ensembled log-probabilities."""
        return geometric_ensemble(in_vocab_logits, out_vocab_logits, self.seen_flags(classes),
                                  self.alpha, self.beta,
                                  valid if self.ensemble_on_valid_mask else None)


def clip_box_crop_logits(clip_encoder: nn.Module, text_encoder: nn.Module,
                         templates: Sequence[str], image: Tensor, mean: Tensor, std: Tensor,
                         mask_logits: Tensor, classes: Sequence[str], logit_scale: Tensor,
                         crop_size: int, margin: float = 0.15) -> Tuple[Tensor, Tensor]:
    """CLIP's classification of each mask from an image crop around it (the
    mask's box, squared and widened by ``margin`` of its side per side, as
    ``CropToBox`` crops CLIP's region-text training pairs, resized to
    ``crop_size``): for a CLIP whose dense map does not transfer from crops to
    whole images (configs/frozenseg/README.md). Same arguments and returns as
    :func:`clip_mask_logits`, with ``image`` (3, H, W) 0-255 RGB and CLIP's
    ``mean``/``std`` (3, 1, 1) instead of the dense map; outside the image a
    crop is black, as ``CropToBox`` pads."""
    from torchvision.ops import masks_to_boxes, roi_align
    masks = F.interpolate(mask_logits[None].float(), size=image.shape[-2:], mode='bilinear',
                          align_corners=False)[0] > 0
    valid = masks.flatten(1).any(1)
    names, owner = split_synonyms(classes)
    text = text_encoder.embed_class_names(names, templates).float()
    logits = image.new_zeros((len(masks), len(names)))
    if valid.any():
        boxes = masks_to_boxes(masks[valid]).float()
        boxes[:, 2:] += 1  # pixel edges
        centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2
        half = half.max(1, keepdim=True).values * (1 + 2 * margin)
        rois = torch.cat([boxes.new_zeros((len(boxes), 1)), centre - half, centre + half], 1)
        crops = roi_align(image[None].float(), rois, crop_size, aligned=True)
        crops = (crops - mean) / std
        embeds = F.normalize(clip_encoder(crops)['pooled'].float(), dim=-1)
        logits[valid] = logit_scale * embeds @ text.t()
    return max_over_synonyms(logits, owner, len(classes)), valid


def read_clip_logit_scale(path: str) -> float:
    """CLIP's temperature (log scale) from an open_clip checkpoint or an
    mmfusion CLIP checkpoint (where ``CLIPPretrainer`` stores it)."""
    state = load_state_dict_file(path)
    for prefix in ('', 'module.'):
        if f'{prefix}logit_scale' in state:
            return float(state[f'{prefix}logit_scale'])
    raise KeyError(f'the CLIP checkpoint {path} has no "logit_scale" entry (an open_clip '
                   'checkpoint or an mmfusion CLIPPretrainer checkpoint has); set the logit '
                   'scale explicitly')


OOV_SOURCES = ('mask_pool', 'box_crop')


def resolve_clip_logit_scale(clip_logit_scale: Optional[float], clip_encoder: dict,
                             owner: str) -> float:
    """CLIP's temperature (log scale): the given value, else the one stored in
    ``clip_encoder['checkpoint']``; with neither (a randomly initialised
    CLIP, as in unit tests) open_clip's initial ``log(1 / 0.07)``, with a
    warning, since a trained CLIP's scale (up to 100) is much sharper."""
    if clip_logit_scale is not None:
        return float(clip_logit_scale)
    checkpoint = clip_encoder.get('checkpoint')
    if isinstance(checkpoint, str):
        return read_clip_logit_scale(checkpoint)
    print_log(f'{owner}: no CLIP checkpoint path and no clip_logit_scale; CLIP\'s '
              'out-of-vocabulary scores use the initial temperature log(1/0.07)',
              logger='current', level=30)
    return math.log(1 / 0.07)


def clip_scoring_setup(owner: str, clip_encoder: nn.Module, clip_encoder_cfg: dict,
                       clip_norm: Optional[dict], clip_logit_scale: Optional[float],
                       oov_source: str) -> Tuple[Tensor, Tensor, Tensor]:
    """What a model that lets a frozen CLIP score masks needs, checked once:
    CLIP's input ``mean``/``std`` (1, 3, 1, 1) (``clip_norm``, else the
    encoder's) and its temperature (log scale, see
    :func:`resolve_clip_logit_scale`); ``oov_source`` must be one of
    :data:`OOV_SOURCES`."""
    if oov_source not in OOV_SOURCES:
        raise ValueError(f'{owner}: oov_source must be one of {OOV_SOURCES}, got '
                         f'{oov_source!r}')
    norm = clip_norm or dict(mean=clip_encoder.mean, std=clip_encoder.std)
    return (torch.tensor(norm['mean']).view(1, 3, 1, 1),
            torch.tensor(norm['std']).view(1, 3, 1, 1),
            torch.tensor(resolve_clip_logit_scale(clip_logit_scale, clip_encoder_cfg, owner)))


def clip_oov_logits(oov_source: str, clip_encoder: nn.Module, text_encoder: nn.Module,
                    templates: Sequence[str], mask_logits: Tensor, classes: Sequence[str],
                    logit_scale: Tensor, dense_map: Optional[Tensor] = None,
                    image: Optional[Tensor] = None, mean: Optional[Tensor] = None,
                    std: Optional[Tensor] = None, crop_size: int = 32) -> Tuple[Tensor, Tensor]:
    """CLIP's classification of one image's masks by ``oov_source``:
    ``'mask_pool'`` (the paper; needs ``dense_map``, see
    :func:`clip_mask_logits`) or ``'box_crop'`` (needs ``image``, ``mean``,
    ``std``, ``crop_size``; see :func:`clip_box_crop_logits`)."""
    if oov_source == 'box_crop':
        return clip_box_crop_logits(clip_encoder, text_encoder, templates, image, mean, std,
                                    mask_logits, classes, logit_scale, crop_size)
    if oov_source == 'mask_pool':
        return clip_mask_logits(clip_encoder, text_encoder, templates, dense_map, mask_logits,
                                classes, logit_scale)
    raise ValueError(f'oov_source must be one of {OOV_SOURCES}, got {oov_source!r}')


@MODELS.register_module()
class CLIPMaskEnsemble(nn.Module):
    """A frozen CLIP that classifies a mask decoder's masks, and the
    geometric ensemble with the decoder's scores: the switch that gives
    FrozenSeg's inference ensemble to a model without a CLIP image tower
    (X-Decoder's ``clip_ensemble``).

    Args:
        clip_encoder (dict): ``OpenCLIPImageEncoder`` whose last map CLIP's
            head classifies per location (ConvNeXt, ModifiedResNet), frozen.
        text_encoder (dict): the same CLIP's ``OpenCLIPTextEncoder``, frozen.
        templates: prompt templates for the class names.
        clip_norm (dict, optional): ``mean``/``std`` (0-255 RGB) the CLIP was
            trained with; default the encoder's.
        clip_logit_scale (float, optional): CLIP's temperature (log scale);
            default read from ``clip_encoder.checkpoint``.
        oov_source (str): ``'mask_pool'`` (the paper: each mask pooled on
            CLIP's last map) or ``'box_crop'`` (CLIP on a crop around each
            mask, ``clip_crop_size`` pixels; FrozenSeg's tiny recipe).
        clip_crop_size (int): crop side for ``'box_crop'``.
        ensemble (dict): :class:`OpenVocabEnsemble` (``seen_classes``: the
            classes the host decoder trained on).
    """

    def __init__(self, clip_encoder: dict, text_encoder: dict,
                 templates: Union[str, Sequence[str]] = 'vild',
                 clip_norm: Optional[dict] = None, clip_logit_scale: Optional[float] = None,
                 oov_source: str = 'mask_pool', clip_crop_size: int = 32,
                 ensemble: dict = dict(type='OpenVocabEnsemble')) -> None:
        super().__init__()
        self.clip_encoder = MODELS.build(dict(dict(frozen=True), **clip_encoder))
        self.text_encoder = MODELS.build(dict(dict(frozen=True), **text_encoder))
        if self.clip_encoder.arch == 'vit':
            raise ValueError('CLIPMaskEnsemble needs a CNN CLIP tower (ConvNeXt, '
                             'ModifiedResNet): a ViT has no map its head classifies')
        self.templates = get_templates(templates)
        mean, std, logit_scale = clip_scoring_setup('CLIPMaskEnsemble', self.clip_encoder,
                                                    clip_encoder, clip_norm, clip_logit_scale,
                                                    oov_source)
        self.register_buffer('mean', mean, persistent=False)
        self.register_buffer('std', std, persistent=False)
        self.register_buffer('logit_scale', logit_scale)
        self.oov_source, self.clip_crop_size = oov_source, clip_crop_size
        self.ensemble = MODELS.build(ensemble)

    @torch.no_grad()
    def forward(self, images: Tensor, in_vocab_logits: Sequence[Tensor], mask_logits: Tensor,
                classes: Sequence[Sequence[str]]) -> List[Tensor]:
        """(B, 3, H, W) 0-255 RGB images, per image (Q, C_b + 1) decoder
        logits, (B, Q, h, w) mask logits and class names -> per image the
        ensembled (Q, C_b + 1) log-probabilities."""
        dense = None
        if self.oov_source == 'mask_pool':
            dense = self.clip_encoder((images - self.mean) / self.std)['maps'][-1]
        scale = self.logit_scale.exp().clamp(max=100)
        out = []
        for b, names in enumerate(classes):
            logits, valid = clip_oov_logits(
                self.oov_source, self.clip_encoder, self.text_encoder, self.templates,
                mask_logits[b], names, scale, dense_map=None if dense is None else dense[b],
                image=images[b], mean=self.mean[0], std=self.std[0], crop_size=self.clip_crop_size)
            out.append(self.ensemble(in_vocab_logits[b], logits, names, valid))
        return out
