"""X-Decoder's head: pixel decoder, masked-attention decoder over latent object
queries, the image query, grounding queries + sentence tokens and caption
tokens; open-vocabulary class logits, the losses of every task, semantic /
instance / panoptic post-processing, referring masks, greedy captions and
retrieval embeddings. Segmentation outputs are formatted by
the shared :class:`MaskPostProcessor`."""
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmfusion.models.common.generation import greedy_decode
from mmfusion.models.common.mask import MaskPostProcessor, pad_class_logits, per_layer_loss_name
from mmfusion.registry import MODELS
from .attention_mask import xdecoder_layout, xdecoder_self_attn_mask
from .tasks import TASKS
# The paper's settings of each branch (X-Decoder's training config: grounding
# on the top 6 layers with class 0.4 / mask 1 / Dice 1, captioning and
# retrieval weight 8 on the top 3 layers; captions decoded greedily for up to
# 50 steps).
GROUNDING_DEFAULTS = dict(
    num_layers=6,
    criterion=dict(
        type='MaskCriterion',
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, reduction='mean',
                      loss_weight=0.4),
        loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                       loss_weight=1.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
                       reduction='mean', naive_dice=True, eps=1.0, loss_weight=1.0)))
CAPTION_DEFAULTS = dict(max_len=50, num_layers=3, loss_weight=8.0)
RETRIEVAL_DEFAULTS = dict(num_layers=3, loss_weight=8.0)


@MODELS.register_module()
class XDecoderHead(BaseModule):
    """Mask decoding with text-embedding classifiers (Zou et al., 2023).

    The decoder runs ``num_queries`` latent object queries plus one image-level
    query (appended as an extra token that cross-attends to the whole image;
    self-attention follows :func:`xdecoder_self_attn_mask`). Each object
    query's class embedding (the decoder's ``cls_embed``, projected to the
    text-embedding width ``D``) is scored against the class-name embeddings
    and a learnable no-object embedding by cosine similarity times
    ``exp(logit_scale)``; the no-object logit is the last column.

    Args:
        pixel_decoder (dict): e.g. ``TransformerEncoderFPNPixelDecoder``.
        transformer_decoder (dict): ``MaskedAttentionDecoder``; its
            ``cls_out_channels`` is set to ``embed_dim``.
        embed_dim (int): Width ``D`` of the text embeddings.
        criterion (dict): ``MaskCriterion`` (the paper's weights by default).
        init_logit_scale (float): Initial log temperature, ``log(1/0.07)``.
        max_logit_scale (float): Clamp of ``exp(logit_scale)``, as CLIP.
        text_width (int, optional): Width of the text encoder's token
            features / token embeddings (grounding and caption inputs);
            required when ``grounding`` or ``caption`` is set.
        grounding (dict, optional): Referring grounding. ``num_queries``
            grounding queries (a duplicate of the object queries: the same
            learned embeddings) decode together with the sentence's token
            features; each is scored against the sentence embedding (one
            class + no object) and trained by ``criterion`` on the top
            ``num_layers`` predictions. Paper defaults: the top 6 layers,
            class 0.4, mask BCE 1.0, Dice 1.0.
        caption (dict, optional): Captioning with causal caption tokens:
            ``max_len`` (decoder positions: the start token and up to
            ``max_len - 1`` words; targets end with the end token), loss ``loss_weight`` (8.0)
            on the top ``num_layers`` (3) predictions.
        retrieval (dict, optional): Image-text contrastive loss through the
            image-level query: ``loss_weight`` (8.0) on the top
            ``num_layers`` (3) predictions.
        test_cfg (dict): ``task`` (``'semantic'``, ``'instance'``,
            ``'panoptic'``, ``'referring'``, ``'caption'`` or
            ``'retrieval'``), ``object_mask_threshold`` (0.8),
            ``overlap_threshold`` (0.8), ``max_per_image`` (100).
    """

    def __init__(self,
                 pixel_decoder: dict,
                 transformer_decoder: dict,
                 embed_dim: int,
                 criterion: dict = dict(type='MaskCriterion'),
                 init_logit_scale: float = math.log(1 / 0.07),
                 max_logit_scale: float = 100.0,
                 text_width: Optional[int] = None,
                 grounding: Optional[dict] = None,
                 caption: Optional[dict] = None,
                 retrieval: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.decoder = MODELS.build(dict(transformer_decoder, cls_out_channels=embed_dim))
        self.num_queries = self.decoder.num_queries
        hidden = self.decoder.hidden_dims
        self.image_query_feat = nn.Embedding(1, hidden)
        self.image_query_pos = nn.Embedding(1, hidden)
        self.no_object_embed = nn.Parameter(torch.randn(embed_dim) / math.sqrt(embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_log_scale = math.log(max_logit_scale)
        self.criterion = MODELS.build(criterion)
        if (grounding is not None or caption is not None) and not text_width:
            raise ValueError('XDecoderHead: grounding and caption need text_width (the text '
                             "encoder's token width)")
        self.grounding_cfg = self.caption_cfg = self.retrieval_cfg = None
        for name, cfg, defaults in (('grounding', grounding, GROUNDING_DEFAULTS),
                                    ('caption', caption, CAPTION_DEFAULTS),
                                    ('retrieval', retrieval, RETRIEVAL_DEFAULTS)):
            unknown = set(cfg or {}) - set(defaults)
            if unknown:
                raise KeyError(f'XDecoderHead {name}: unknown keys {sorted(unknown)}; expected '
                               f'some of {sorted(defaults)}')
        if grounding is not None:
            self.grounding_cfg = dict(GROUNDING_DEFAULTS, **grounding)
            # A partial criterion (e.g. only the matcher) keeps the default losses.
            self.grounding_cfg['criterion'] = dict(GROUNDING_DEFAULTS['criterion'],
                                                   **grounding.get('criterion', {}))
            self.grounding_criterion = MODELS.build(self.grounding_cfg['criterion'])
            self.grounding_in = nn.Linear(text_width, hidden)
        if caption is not None:
            self.caption_cfg = dict(CAPTION_DEFAULTS, **caption)
            self.caption_in = nn.Linear(text_width, hidden)
            self.caption_pos = nn.Embedding(self.caption_cfg['max_len'], hidden)
            self.caption_out = nn.Linear(hidden, text_width)
        if retrieval is not None:
            self.retrieval_cfg = dict(RETRIEVAL_DEFAULTS, **retrieval)
            self.retrieval_proj = nn.Linear(hidden, embed_dim)
            self.retrieval_logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.test_cfg = dict(task='semantic', object_mask_threshold=0.8,
                             overlap_threshold=0.8, max_per_image=100)
        self.test_cfg.update(test_cfg or {})
        if self.test_cfg['task'] not in TASKS:
            raise ValueError(f'test_cfg task must be one of {TASKS}, got {self.test_cfg["task"]!r}')
        self.postprocessor = MaskPostProcessor(self.test_cfg)

    # -- decoding ----------------------------------------------------------
    def forward(self, feats: List[Tensor], batch_img_metas: Optional[Sequence[dict]] = None,
                **tokens) -> Dict[str, object]:
        """Pixel decoder, then :meth:`decode` (``tokens``: its keyword
        arguments)."""
        return self.decode(self.pixel_decoder(feats, batch_img_metas), **tokens)

    def decode(self, pixel_out: Tuple[Tensor, List[Tensor]],
               grounding_tokens: Optional[Tensor] = None,
               grounding_valid: Optional[Tensor] = None,
               caption_tokens: Optional[Tensor] = None,
               cache: Optional[dict] = None) -> Dict[str, object]:
        """Run the decoder over ``[object queries | image query | grounding
        queries | grounding tokens | caption tokens]`` under
        :func:`xdecoder_self_attn_mask`.

        Args:
            pixel_out (tuple): ``(mask_features, multi_scale_features)`` of
                the pixel decoder (kept by callers that decode several times,
                e.g. greedy captioning).
            grounding_tokens (Tensor, optional): (B, Lg, text_width) token
                features of one sentence per image.
            grounding_valid (Tensor, optional): (B, Lg) bool, False at
                padding (blocked as self-attention keys).
            caption_tokens (Tensor, optional): (B, Lc, text_width) token
                embeddings of the caption so far (start token first).
            cache (dict, optional): An empty dict, filled so that
                :meth:`decode_next_caption_tokens` can continue the caption.

        Returns:
            dict of per-prediction lists (``num_layers + 1`` entries):
            ``cls_embeds`` (B, N, D) / ``mask_logits`` (B, N, H/4, W/4) of the
            object queries, ``image_embeds`` (B, C) of the image query; with
            grounding tokens ``grounding_cls_embeds`` / ``grounding_mask_logits``
            of the grounding queries; with caption tokens ``caption_embeds``
            (B, Lc, text_width).
        """
        mask_features, multi_scale = pixel_out
        batch = mask_features.shape[0]
        num_queries = self.num_queries
        has_grounding = grounding_tokens is not None
        if has_grounding and self.grounding_cfg is None:
            raise RuntimeError('XDecoderHead was built without grounding')
        if caption_tokens is not None and self.caption_cfg is None:
            raise RuntimeError('XDecoderHead was built without caption')
        num_grd = num_queries if has_grounding else 0
        num_gtok = grounding_tokens.shape[1] if has_grounding else 0
        num_cap = caption_tokens.shape[1] if caption_tokens is not None else 0
        layout = xdecoder_layout(num_queries, num_grd, num_gtok, num_cap)

        def expand(x: Tensor) -> Tensor:
            return x.unsqueeze(0).expand(batch, -1, -1)

        extra = [expand(self.image_query_feat.weight)]
        extra_pos = [expand(self.image_query_pos.weight)]
        # Per extra token: cross-attend within its own predicted mask
        # (grounding queries) or to the whole image (image query, caption
        # tokens), or not at all (sentence tokens: appended after
        # cross-attention, as the paper; their features are their position).
        own_mask, cross = [False], [True]
        if has_grounding:
            sentence = self.grounding_in(grounding_tokens)
            extra += [expand(self.decoder.query_feat.weight), sentence]
            extra_pos += [expand(self.decoder.query_embed.weight), sentence]
            own_mask += [True] * num_grd + [False] * num_gtok
            cross += [True] * num_grd + [False] * num_gtok
        if num_cap:
            if num_cap > self.caption_cfg['max_len']:
                raise ValueError(f'{num_cap} caption tokens exceed caption max_len '
                                 f'{self.caption_cfg["max_len"]}')
            extra.append(self.caption_in(caption_tokens))
            extra_pos.append(expand(self.caption_pos.weight[:num_cap]))
            own_mask += [False] * num_cap
            cross += [True] * num_cap
        self_attn_mask = xdecoder_self_attn_mask(num_queries, num_grd, num_gtok, num_cap,
                                                 device=mask_features.device)
        if has_grounding and grounding_valid is not None and not bool(grounding_valid.all()):
            length = self_attn_mask.shape[0]
            padded = torch.zeros(batch, length, dtype=torch.bool, device=mask_features.device)
            padded[:, layout['grounding_tokens']] = ~grounding_valid.bool()
            eye = torch.eye(length, dtype=torch.bool, device=mask_features.device)
            self_attn_mask = (self_attn_mask[None] | padded[:, None, :]) & ~eye
        out = self.decoder(
            multi_scale, mask_features,
            extra_tokens=torch.cat(extra, dim=1), extra_pos=torch.cat(extra_pos, dim=1),
            self_attn_mask=self_attn_mask,
            mask_extra_cross_attn=torch.tensor(own_mask, device=mask_features.device),
            extra_cross_attn=torch.tensor(cross, device=mask_features.device), cache=cache)
        obj, img, grd, cap = (layout[k] for k in ('object', 'image', 'grounding', 'caption'))
        result = dict(cls_embeds=[x[:, obj] for x in out['cls_embeds']],
                      mask_logits=[x[:, obj] for x in out['mask_logits']],
                      image_embeds=[x[:, img].squeeze(1) for x in out['query_embeds']])
        if has_grounding:
            result['grounding_cls_embeds'] = [x[:, grd] for x in out['cls_embeds']]
            result['grounding_mask_logits'] = [x[:, grd] for x in out['mask_logits']]
        if num_cap:
            result['caption_embeds'] = [self.caption_out(x[:, cap]) for x in out['query_embeds']]
        return result

    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def class_logits(self, cls_embeds: Tensor, class_embeds: Tensor) -> Tensor:
        """``(..., D)`` query embeddings x ``(C, D)`` class embeddings ->
        ``(..., C + 1)`` scaled cosine logits, no object last."""
        if class_embeds.shape[0] == 0:
            raise ValueError('X-Decoder needs at least one class name')
        text = torch.cat([class_embeds.to(cls_embeds.dtype),
                          self.no_object_embed[None].to(cls_embeds.dtype)])
        return self.scale() * F.normalize(cls_embeds, dim=-1) @ F.normalize(text, dim=-1).t()

    def batch_class_logits(self, cls_embeds: Tensor,
                           class_embeds: Sequence[Tensor]) -> List[Tensor]:
        """(B, N, D) and per-image (C_b, D) -> per-image (N, C_b + 1)."""
        return [self.class_logits(q, t) for q, t in zip(cls_embeds, class_embeds)]

    # -- training ----------------------------------------------------------
    def loss(self, feats: List[Tensor], class_embeds: Sequence[Tensor],
             batch_gt_instances: Sequence[InstanceData],
             batch_img_metas: Sequence[dict],
             grounding: Optional[dict] = None,
             caption: Optional[dict] = None,
             retrieval: Optional[dict] = None) -> Dict[str, Tensor]:
        """MaskCriterion over every layer's object-query predictions, plus the
        grounding / caption / retrieval losses of the branches given.

        Args:
            class_embeds (list[Tensor]): per image (C_b, D) class embeddings.
            batch_gt_instances (list[InstanceData]): ``labels`` in [0, C_b)
                and ``masks`` (things and stuff segments).
            grounding (dict, optional): ``tokens`` (B, Lg, text_width),
                ``valid`` (B, Lg), ``sentence_embeds`` (B, D) and
                ``gt_instances`` (per image one mask labelled 0).
            caption (dict, optional): ``tokens`` (B, Lc, text_width) input
                embeddings (start token first), ``targets`` (B, Lc) indices
                into ``vocab_embeds`` (V, text_width) of the next token, -100
                where ignored.
            retrieval (dict, optional): ``text_embeds`` (B, D), the caption
                embedding of each image, and optionally ``positives`` (B, B)
                bool, which captions match which image (default: the
                diagonal; images sharing a caption text are each other's
                positives).
        """
        out = self(feats, batch_img_metas,
                   grounding_tokens=grounding['tokens'] if grounding else None,
                   grounding_valid=grounding['valid'] if grounding else None,
                   caption_tokens=caption['tokens'] if caption else None)
        all_cls = [pad_class_logits(self.batch_class_logits(c, class_embeds))
                   for c in out['cls_embeds']]
        losses = self.criterion(all_cls, out['mask_logits'], batch_gt_instances,
                                batch_img_metas)
        losses['logit_scale'] = self.scale().detach()
        if grounding:
            losses.update(self.grounding_loss(out, grounding, batch_img_metas))
        if caption:
            losses.update(self.caption_loss(out, caption))
        if retrieval:
            losses.update(self.retrieval_loss(out, retrieval))
        return losses

    @staticmethod
    def _top(preds: Sequence[Tensor], num_layers: int) -> Sequence[Tensor]:
        """The last ``num_layers`` predictions (the top layers)."""
        return preds[-num_layers:] if num_layers > 0 else []

    def _first_index(self, num_top: int) -> int:
        """Index of the first of the top ``num_top`` predictions among all
        ``num_layers + 1``."""
        return self.decoder.num_layers + 1 - num_top

    def _per_layer_names(self, values: Sequence[Tensor], name: str) -> Dict[str, Tensor]:
        """Losses of the top ``len(values)`` predictions, named as the
        segmentation losses."""
        first = self._first_index(len(values))
        return {per_layer_loss_name(name, i, len(values), first): v
                for i, v in enumerate(values)}

    def grounding_logits(self, cls_embeds: Tensor, sentence_embeds: Tensor) -> Tensor:
        """(B, G, D) grounding-query embeddings x (B, D) sentence embeddings
        -> (B, G, 2) logits: [this sentence, no object]."""
        return torch.stack([self.class_logits(q, t[None])
                            for q, t in zip(cls_embeds, sentence_embeds)])

    def grounding_loss(self, out: dict, grounding: dict,
                       batch_img_metas: Sequence[dict]) -> Dict[str, Tensor]:
        num_layers = self.grounding_cfg['num_layers']
        cls = [self.grounding_logits(c, grounding['sentence_embeds'])
               for c in self._top(out['grounding_cls_embeds'], num_layers)]
        masks = self._top(out['grounding_mask_logits'], num_layers)
        losses = self.grounding_criterion(cls, masks, grounding['gt_instances'],
                                          batch_img_metas, first_index=self._first_index(len(cls)))
        return {f'grounding.{k}': v for k, v in losses.items()}

    def caption_logits(self, caption_embeds: Tensor, vocab_embeds: Tensor) -> Tensor:
        """(B, L, text_width) x (V, text_width) -> (B, L, V), the token
        embedding matrix as the output layer (weights tied, as the paper)."""
        return caption_embeds @ vocab_embeds.to(caption_embeds.dtype).t()

    def caption_loss(self, out: dict, caption: dict) -> Dict[str, Tensor]:
        weight = self.caption_cfg['loss_weight']
        values = []
        for embeds in self._top(out['caption_embeds'], self.caption_cfg['num_layers']):
            logits = self.caption_logits(embeds, caption['vocab_embeds']).float()
            values.append(weight * F.cross_entropy(logits.flatten(0, 1),
                                                   caption['targets'].flatten(),
                                                   ignore_index=-100))
        return self._per_layer_names(values, 'loss_caption')

    def retrieval_scale(self) -> Tensor:
        return self.retrieval_logit_scale.clamp(max=self.max_log_scale).exp()

    def image_text_embeds(self, image_query: Tensor) -> Tensor:
        """(B, C) image-query output -> (B, D) L2-normalised image embedding."""
        return F.normalize(self.retrieval_proj(image_query), dim=-1)

    def retrieval_loss(self, out: dict, retrieval: dict) -> Dict[str, Tensor]:
        """Symmetric InfoNCE between image-query embeddings and the captions
        of the batch; with several positives (repeated caption texts) the
        target spreads evenly over them."""
        weight = self.retrieval_cfg['loss_weight']
        text = F.normalize(retrieval['text_embeds'].float(), dim=-1)
        positives = retrieval.get('positives')
        if positives is None:
            positives = torch.eye(len(text), dtype=torch.bool, device=text.device)
        target = positives.float() / positives.sum(1, keepdim=True)
        target_t = positives.t().float() / positives.t().sum(1, keepdim=True)
        values = []
        for image_query in self._top(out['image_embeds'], self.retrieval_cfg['num_layers']):
            logits = self.retrieval_scale() * self.image_text_embeds(image_query.float()) @ text.t()
            values.append(weight * (F.cross_entropy(logits, target)
                                    + F.cross_entropy(logits.t(), target_t)) / 2)
        losses = self._per_layer_names(values, 'loss_retrieval')
        losses['retrieval_logit_scale'] = self.retrieval_scale().detach()
        return losses

    # -- inference ---------------------------------------------------------
    def predict(self, feats: List[Tensor], class_embeds: Sequence[Tensor],
                batch_img_metas: Sequence[dict], thing_flags: Sequence[Optional[Tensor]],
                task: Optional[str] = None,
                refine_logits: Optional[Callable[[List[Tensor], Tensor], List[Tensor]]] = None
                ) -> List[Dict[str, object]]:
        """Per image a dict with ``pred_sem_seg``, ``pred_panoptic_seg`` or
        ``pred_instances`` (at ``ori_shape``) for segmentation ``task``.

        Args:
            thing_flags (list[Tensor | None]): per image (C_b,) bool, which
                classes are things (stuff is merged per class in panoptic
                output, instance output keeps things only); ``None`` = all
                things.
            refine_logits (callable, optional): per-image (N, C_b + 1) class
                logits and the (B, N, h, w) mask logits -> new class logits
                (e.g. ``CLIPMaskEnsemble``'s out-of-vocabulary ensemble).
        """
        task = task or self.test_cfg['task']
        out = self(feats, batch_img_metas)
        cls_logits = self.batch_class_logits(out['cls_embeds'][-1], class_embeds)
        if refine_logits is not None:
            cls_logits = refine_logits(cls_logits, out['mask_logits'][-1])
        return self.postprocessor(task, cls_logits, out['mask_logits'][-1], batch_img_metas,
                                  thing_flags)

    def predict_referring(self, feats: List[Tensor], batch_img_metas: Sequence[dict],
                          grounding: dict) -> List[Dict[str, object]]:
        """Per image the mask of the grounding query most likely to be the
        sentence (``grounding``: ``tokens``, ``valid``, ``sentence_embeds``)
        as ``pred_sem_seg`` (1 = referred, ``seg_logits`` its mask logits)."""
        out = self(feats, batch_img_metas, grounding_tokens=grounding['tokens'],
                   grounding_valid=grounding['valid'])
        logits = self.grounding_logits(out['grounding_cls_embeds'][-1],
                                       grounding['sentence_embeds'])
        best = logits.float().softmax(-1)[..., 0].argmax(-1)
        masks = out['grounding_mask_logits'][-1]
        return [dict(pred_sem_seg=self.postprocessor.referring(masks[b, best[b]], meta))
                for b, meta in enumerate(batch_img_metas)]

    def decode_next_caption_tokens(self, caption_tokens: Tensor, cache: dict) -> Tensor:
        """Continue a caption decoded with ``decode(..., cache=cache)``:
        (B, T, text_width) embeddings of the next tokens -> their
        ``caption_embeds`` (B, T, text_width) at the last layer. The object
        and image queries are not decoded again (they never see caption
        tokens); the new tokens attend to them and to the earlier caption
        tokens through the cache."""
        start = cache['layers'][0]['tokens'].shape[1] - self.num_queries - 1
        count = caption_tokens.shape[1]
        if start + count > self.caption_cfg['max_len']:
            raise ValueError(f'{start + count} caption tokens exceed caption max_len '
                             f'{self.caption_cfg["max_len"]}')
        pos = self.caption_pos.weight[start:start + count]
        pos = pos.unsqueeze(0).expand(caption_tokens.shape[0], -1, -1)
        normed = self.decoder.forward_appended(self.caption_in(caption_tokens), pos, cache)
        return self.caption_out(normed)

    @torch.no_grad()
    def generate_captions(self, feats: List[Tensor], batch_img_metas: Sequence[dict],
                          embed_tokens, vocab_embeds: Tensor, vocab_ids: Tensor,
                          start_id: int, end_id: int,
                          max_len: Optional[int] = None) -> List[List[int]]:
        """Greedy decoding: from the start token, append the most likely
        vocabulary token until the end token or ``max_len`` tokens.

        The pixel decoder runs once, the decoder over the object queries, the
        image query and the start token once; every later token is one
        cached step (:meth:`decode_next_caption_tokens`).

        Args:
            embed_tokens (callable): (B, L) token ids -> (B, L, text_width).
            vocab_embeds (Tensor): (V, text_width) output vocabulary rows.
            vocab_ids (Tensor): (V,) token id of each row, increasing.

        Returns:
            list[list[int]]: per image the generated token ids, without the
            start and end tokens.
        """
        max_len = min(max_len or self.caption_cfg['max_len'], self.caption_cfg['max_len'])
        pixel_out = self.pixel_decoder(feats, batch_img_metas)
        device = pixel_out[0].device
        vocab_ids = vocab_ids.to(device)
        num_tokens = int(vocab_ids.max()) + 1
        start = torch.full((pixel_out[0].shape[0], 1), start_id, dtype=torch.long, device=device)
        cache: dict = {}

        def step(ids: Tensor) -> Tensor:
            if cache:
                embeds = self.decode_next_caption_tokens(embed_tokens(ids), cache)
            else:
                out = self.decode(pixel_out, caption_tokens=embed_tokens(ids), cache=cache)
                embeds = out['caption_embeds'][-1]
            logits = self.caption_logits(embeds[:, -1], vocab_embeds)
            logits = logits.masked_fill(vocab_ids == start_id, float('-inf'))
            # Rows -> token ids; tokens outside the vocabulary are never chosen.
            full = logits.new_full((logits.shape[0], num_tokens), float('-inf'))
            return full.index_copy(1, vocab_ids, logits)

        ids = greedy_decode(step, start, max_len - 1, end_id, end_id)
        return [row[:row.index(end_id)] if end_id in row else row
                for row in ids[:, 1:].tolist()]

    def predict_image_embeds(self, feats: List[Tensor],
                             batch_img_metas: Sequence[dict]) -> Tensor:
        """(B, D) L2-normalised retrieval embeddings of the image query."""
        if self.retrieval_cfg is None:
            raise RuntimeError('XDecoderHead was built without retrieval')
        return self.image_text_embeds(self(feats, batch_img_metas)['image_embeds'][-1])
