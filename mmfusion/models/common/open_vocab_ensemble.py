"""Out-of-vocabulary classification by a frozen CLIP, and its geometric
ensemble with a segmentation decoder's own (in-vocabulary) class scores.

FC-CLIP introduced it and FrozenSeg keeps it: the decoder's classifier is
trained on the seen classes and is over-confident on them; the frozen CLIP
never saw the segmentation data and ranks unseen classes better. Each mask
is average-pooled on CLIP's dense feature map and classified by CLIP's own
head against the same class-name embeddings; the two distributions are mixed
geometrically, leaning on CLIP for classes the decoder never trained on.

Any mask decoder with class logits, mask logits and an ``OpenCLIPImageEncoder``
can use it (FrozenSeg always; X-Decoder by its head's ``ensemble`` switch).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfusion.registry import MODELS

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
    """Average of a dense map over each binarised mask.

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

    @staticmethod
    def clip_logits(clip_encoder: nn.Module, dense_map: Tensor, mask_logits: Tensor,
                    class_embeds: Tensor, logit_scale: Tensor) -> Tuple[Tensor, Tensor]:
        """CLIP's own classification of each mask.

        Args:
            clip_encoder: an ``OpenCLIPImageEncoder`` (its ``embed_pooled``
                applies CLIP's head to pooled trunk features).
            dense_map: (B, C, h, w) the trunk's last map (before the head).
            mask_logits: (B, Q, H, W).
            class_embeds: (S, D) unit-norm text embeddings (one row per
                synonym), or per image a list of them.
            logit_scale: CLIP's temperature (``exp`` already applied).

        Returns:
            (B, Q, S) logits and (B, Q) valid flags.
        """
        pooled, valid = binary_mask_pool(dense_map, mask_logits)
        embeds = F.normalize(clip_encoder.embed_pooled(pooled).float(), dim=-1)
        return logit_scale * embeds @ class_embeds.float().t(), valid

    def forward(self, in_vocab_logits: Tensor, out_vocab_logits: Tensor, classes: Sequence[str],
                valid: Optional[Tensor] = None) -> Tensor:
        """(Q, C + 1) decoder logits, (Q, C) CLIP logits of one image's
        ``classes`` -> (Q, C + 1) ensembled log-probabilities."""
        return geometric_ensemble(in_vocab_logits, out_vocab_logits, self.seen_flags(classes),
                                  self.alpha, self.beta,
                                  valid if self.ensemble_on_valid_mask else None)
