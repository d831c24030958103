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
from mmfusion.utils.dist import all_gather_list, all_gather_with_grad

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
CAPTION_DEFAULTS = dict(max_len=50, num_layers=3, loss_weight=8.0, pos_with_features=False,
                        decode_len=None, cut_at_period=False)
RETRIEVAL_DEFAULTS = dict(num_layers=3, loss_weight=8.0, image_proj='own', logit_scale='own',
                          all_gather=False)
TEST_DEFAULTS = dict(task='semantic', object_mask_threshold=0.8, overlap_threshold=0.8,
                     max_per_image=100, mask_resize='bilinear', referring_select='softmax',
                     segment_with_image_token=False)


def _check_choice(name: str, value: str, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f'XDecoderHead {name} must be one of {choices}, got {value!r}')


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
            on the top ``num_layers`` (3) predictions; ``pos_with_features``
            (official): a caption token's position embedding is its
            features plus the learned position; ``decode_len``: positions
            greedy decoding fills (default ``max_len``; official: 77
            positions, 50 decoding steps); ``cut_at_period``: the caption
            ends at its first period (official).
        retrieval (dict, optional): Image-text contrastive loss through the
            image-level query: ``loss_weight`` (8.0) on the top
            ``num_layers`` (3) predictions; ``image_proj`` ``'own'`` (a
            Linear of its own) or ``'cls_embed'`` (the class-embedding
            projection, official); ``logit_scale`` ``'own'`` or ``'shared'``
            (the classification temperature, official); ``all_gather``
            (official: the InfoNCE runs over every rank's embeddings).
        no_object (str): ``'learned'`` (a learnable no-object embedding) or
            ``'text'`` (official: the caller appends the text embedding of a
            background sentence to every class list, and to the sentence of
            a referring query).
        image_token (str): ``'query'`` (the image query's own output is the
            image-level token; it cross-attends to the whole image) or
            ``'pooled'`` (official: at every prediction the image token is
            the softmax(image . object)-weighted sum of the object-query
            outputs, cosine similarities without temperature; the image
            query cross-attends within the mask predicted from that token,
            and the token after it (the first grounding query) to the whole
            image, as the official code does).
        text_input_proj (bool): Linear projections of the text encoder's
            token features into the decoder (``grounding_in``,
            ``caption_in``). Official: none; the tokens come in at the
            decoder width (the caller projects them).
        proj_bias (bool): Bias of ``decoder.cls_embed`` and ``caption_out``
            (official: bias-free (in, out) matrices).
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
                 no_object: str = 'learned',
                 image_token: str = 'query',
                 text_input_proj: bool = True,
                 proj_bias: bool = True,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        _check_choice('no_object', no_object, ('learned', 'text'))
        _check_choice('image_token', image_token, ('query', 'pooled'))
        self.no_object = no_object
        self.image_token = image_token
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.decoder = MODELS.build(dict(transformer_decoder, cls_out_channels=embed_dim,
                                         cls_embed_bias=proj_bias))
        self.num_queries = self.decoder.num_queries
        hidden = self.decoder.hidden_dims
        self.image_query_feat = nn.Embedding(1, hidden)
        self.image_query_pos = nn.Embedding(1, hidden)
        if no_object == 'learned':
            self.no_object_embed = nn.Parameter(torch.randn(embed_dim) / math.sqrt(embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_log_scale = math.log(max_logit_scale)
        self.criterion = MODELS.build(criterion)
        if (grounding is not None or caption is not None) and not text_width:
            raise ValueError('XDecoderHead: grounding and caption need text_width (the text '
                             "encoder's token width)")
        if not text_input_proj and text_width and text_width != hidden:
            raise ValueError(f'XDecoderHead: text_input_proj=False feeds text tokens to the '
                             f'decoder as they are, so text_width ({text_width}) must equal the '
                             f'decoder width ({hidden})')

        def text_in() -> nn.Module:
            return nn.Linear(text_width, hidden) if text_input_proj else nn.Identity()

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
            self.grounding_in = text_in()
        if caption is not None:
            self.caption_cfg = dict(CAPTION_DEFAULTS, **caption)
            self.caption_in = text_in()
            self.caption_pos = nn.Embedding(self.caption_cfg['max_len'], hidden)
            self.caption_out = nn.Linear(hidden, text_width, bias=proj_bias)
        if retrieval is not None:
            self.retrieval_cfg = dict(RETRIEVAL_DEFAULTS, **retrieval)
            _check_choice('retrieval image_proj', self.retrieval_cfg['image_proj'],
                          ('own', 'cls_embed'))
            _check_choice('retrieval logit_scale', self.retrieval_cfg['logit_scale'],
                          ('own', 'shared'))
            if self.retrieval_cfg['image_proj'] == 'own':
                self.retrieval_proj = nn.Linear(hidden, embed_dim)
            if self.retrieval_cfg['logit_scale'] == 'own':
                self.retrieval_logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        unknown = set(test_cfg or {}) - set(TEST_DEFAULTS)
        if unknown:
            raise KeyError(f'XDecoderHead test_cfg: unknown keys {sorted(unknown)}; expected '
                           f'some of {sorted(TEST_DEFAULTS)}')
        self.test_cfg = dict(TEST_DEFAULTS, **(test_cfg or {}))
        if self.test_cfg['task'] not in TASKS:
            raise ValueError(f'test_cfg task must be one of {TASKS}, got {self.test_cfg["task"]!r}')
        _check_choice('test_cfg mask_resize', self.test_cfg['mask_resize'],
                      ('bilinear', 'bicubic'))
        _check_choice('test_cfg referring_select', self.test_cfg['referring_select'],
                      ('softmax', 'similarity'))
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
            object queries, ``image_embeds`` (B, C) / ``image_cls_embeds``
            (B, D) / ``image_mask_logits`` (B, 1, H/4, W/4) of the image
            token; with
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
        pooled = self.image_token == 'pooled'
        # Per extra token: cross-attend within its own predicted mask
        # (grounding queries; the pooled image token) or to the whole image
        # (the image query's own token, caption tokens), or not at all
        # (sentence tokens: appended after cross-attention, as the paper;
        # their features are their position).
        own_mask, cross = [pooled], [True]
        if has_grounding:
            sentence = self.grounding_in(grounding_tokens)
            extra += [expand(self.decoder.query_feat.weight), sentence]
            extra_pos += [expand(self.decoder.query_embed.weight), sentence]
            # The official code unmasks the token right after the image query
            # (its "cls token" fill is off by one): the first grounding query.
            grounding_own = [not pooled] + [True] * (num_grd - 1)
            own_mask += grounding_own + [False] * num_gtok
            cross += [True] * num_grd + [False] * num_gtok
        if num_cap:
            if num_cap > self.caption_cfg['max_len']:
                raise ValueError(f'{num_cap} caption tokens exceed caption max_len '
                                 f'{self.caption_cfg["max_len"]}')
            tokens = self.caption_in(caption_tokens)
            extra.append(tokens)
            extra_pos.append(self._caption_pos(tokens, 0))
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
            extra_cross_attn=torch.tensor(cross, device=mask_features.device), cache=cache,
            transform_normed=self.pool_image_token if pooled else None)
        obj, img, grd, cap = (layout[k] for k in ('object', 'image', 'grounding', 'caption'))
        result = dict(cls_embeds=[x[:, obj] for x in out['cls_embeds']],
                      mask_logits=[x[:, obj] for x in out['mask_logits']],
                      image_embeds=[x[:, img].squeeze(1) for x in out['query_embeds']],
                      image_cls_embeds=[x[:, img].squeeze(1) for x in out['cls_embeds']],
                      image_mask_logits=[x[:, img] for x in out['mask_logits']])
        if has_grounding:
            result['grounding_cls_embeds'] = [x[:, grd] for x in out['cls_embeds']]
            result['grounding_mask_logits'] = [x[:, grd] for x in out['mask_logits']]
        if num_cap:
            result['caption_embeds'] = [self.caption_out(x[:, cap]) for x in out['query_embeds']]
        return result

    def pool_image_token(self, normed: Tensor) -> Tensor:
        """(B, L, C) normed decoder tokens with the image token (at index
        ``num_queries``) replaced by the softmax(image . object)-weighted sum
        of the object tokens (cosine similarities, no temperature), as the
        official X-Decoder head computes its image-level token."""
        n = self.num_queries
        objects, image = normed[:, :n], normed[:, n:n + 1]

        def unit(x: Tensor) -> Tensor:
            return x / (x.norm(dim=-1, keepdim=True) + 1e-7)

        weights = (unit(image) @ unit(objects).transpose(1, 2)).softmax(-1)  # (B, 1, N)
        return torch.cat([objects, weights @ objects, normed[:, n + 1:]], dim=1)

    def _caption_pos(self, tokens: Tensor, start: int) -> Tensor:
        """Position embedding of (B, T, C) caption tokens at positions
        ``start ..``: the learned positions, plus the tokens themselves with
        ``pos_with_features`` (official)."""
        pos = self.caption_pos.weight[start:start + tokens.shape[1]].unsqueeze(0)
        if self.caption_cfg['pos_with_features']:
            return tokens + pos
        return pos.expand(tokens.shape[0], -1, -1)

    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def class_logits(self, cls_embeds: Tensor, class_embeds: Tensor) -> Tensor:
        """``(..., D)`` query embeddings x ``(C, D)`` class embeddings ->
        ``(..., C + 1)`` scaled cosine logits, no object last. With
        ``no_object='text'`` the last of the ``class_embeds`` rows is
        already the no-object (background) text embedding."""
        text = class_embeds.to(cls_embeds.dtype)
        if self.no_object == 'learned':
            text = torch.cat([text, self.no_object_embed[None].to(cls_embeds.dtype)])
        if text.shape[0] < 2:
            raise ValueError('X-Decoder needs at least one class name')
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
        # Each branch's losses into a local first: a call that breaks the graph inside
        # losses.update(...) would leave that bound method (new every batch) on the stack, and
        # torch.compile would recompile every iteration.
        if grounding:
            branch = self.grounding_loss(out, grounding, batch_img_metas)
            losses.update(branch)
        if caption:
            branch = self.caption_loss(out, caption)
            losses.update(branch)
        if retrieval:
            branch = self.retrieval_loss(out, retrieval)
            losses.update(branch)
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

    def grounding_logits(self, cls_embeds: Tensor, sentence_embeds: Tensor,
                         no_object_embed: Optional[Tensor] = None) -> Tensor:
        """(B, G, D) grounding-query embeddings x (B, D) sentence embeddings
        -> (B, G, 2) logits: [this sentence, no object] (with
        ``no_object='text'``, ``no_object_embed`` (D,) is that text's
        embedding)."""
        if self.no_object == 'text':
            if no_object_embed is None:
                raise ValueError("no_object='text' needs the no-object text embedding")
            rows = [torch.stack([t, no_object_embed.to(t)]) for t in sentence_embeds]
        else:
            rows = [t[None] for t in sentence_embeds]
        return torch.stack([self.class_logits(q, t) for q, t in zip(cls_embeds, rows)])

    def grounding_loss(self, out: dict, grounding: dict,
                       batch_img_metas: Sequence[dict]) -> Dict[str, Tensor]:
        num_layers = self.grounding_cfg['num_layers']
        cls = [self.grounding_logits(c, grounding['sentence_embeds'],
                                     grounding.get('no_object_embed'))
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
        if self.retrieval_cfg['logit_scale'] == 'shared':
            return self.scale()
        return self.retrieval_logit_scale.clamp(max=self.max_log_scale).exp()

    def image_text_embeds(self, out: dict) -> List[Tensor]:
        """Per prediction the (B, D) L2-normalised retrieval embedding of the
        image token: ``retrieval_proj`` of its output, or (``image_proj=
        'cls_embed'``) its class embedding."""
        if self.retrieval_cfg['image_proj'] == 'cls_embed':
            return [F.normalize(x.float(), dim=-1) for x in out['image_cls_embeds']]
        return [F.normalize(self.retrieval_proj(x.float()), dim=-1) for x in out['image_embeds']]

    def retrieval_loss(self, out: dict, retrieval: dict) -> Dict[str, Tensor]:
        """Symmetric InfoNCE between image embeddings and the captions of the
        batch; with several positives (repeated caption texts) the target
        spreads evenly over them. With ``all_gather`` the batch is every
        rank's (the other ranks' embeddings as constants, as the official
        code): each rank's loss equals the one-process loss over the whole
        batch, and positives across ranks count as negatives."""
        weight = self.retrieval_cfg['loss_weight']
        text = F.normalize(retrieval['text_embeds'].float(), dim=-1)
        positives = retrieval.get('positives')
        if positives is None:
            positives = torch.eye(len(text), dtype=torch.bool, device=text.device)
        gather = self.retrieval_cfg['all_gather']
        if gather:
            text = all_gather_with_grad(text)
            positives = torch.block_diag(*all_gather_list(positives))
        target = positives.float() / positives.sum(1, keepdim=True)
        target_t = positives.t().float() / positives.t().sum(1, keepdim=True)
        values = []
        for image in self._top(self.image_text_embeds(out), self.retrieval_cfg['num_layers']):
            if gather:
                image = all_gather_with_grad(image)
            logits = self.retrieval_scale() * image @ text.t()
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
        cls_embeds, mask_logits = out['cls_embeds'][-1], out['mask_logits'][-1]
        if self.test_cfg['segment_with_image_token']:  # official: 101 queries
            cls_embeds = torch.cat([cls_embeds, out['image_cls_embeds'][-1][:, None]], dim=1)
            mask_logits = torch.cat([mask_logits, out['image_mask_logits'][-1]], dim=1)
        cls_logits = self.batch_class_logits(cls_embeds, class_embeds)
        if refine_logits is not None:
            cls_logits = refine_logits(cls_logits, mask_logits)
        return self.postprocessor(task, cls_logits, mask_logits, batch_img_metas, thing_flags)

    def predict_referring(self, feats: List[Tensor], batch_img_metas: Sequence[dict],
                          grounding: dict) -> List[Dict[str, object]]:
        """Per image the mask of the grounding query most likely to be the
        sentence (``grounding``: ``tokens``, ``valid``, ``sentence_embeds``)
        as ``pred_sem_seg`` (1 = referred, ``seg_logits`` its mask logits)."""
        out = self(feats, batch_img_metas, grounding_tokens=grounding['tokens'],
                   grounding_valid=grounding['valid'])
        logits = self.grounding_logits(out['grounding_cls_embeds'][-1],
                                       grounding['sentence_embeds'],
                                       grounding.get('no_object_embed')).float()
        if self.test_cfg['referring_select'] == 'similarity':
            best = logits[..., 0].argmax(-1)
        else:
            best = logits.softmax(-1)[..., 0].argmax(-1)
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
        tokens = self.caption_in(caption_tokens)
        normed = self.decoder.forward_appended(tokens, self._caption_pos(tokens, start), cache)
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
            embed_tokens (callable): (B, L) token ids -> (B, L, text_width),
                causal (a row's result may depend on the ids before it).
            vocab_embeds (Tensor): (V, text_width) output vocabulary rows.
            vocab_ids (Tensor): (V,) token id of each row, increasing.

        Returns:
            list[list[int]]: per image the generated token ids, without the
            start and end tokens.
        """
        max_len = min(max_len or self.caption_cfg['decode_len'] or self.caption_cfg['max_len'],
                      self.caption_cfg['max_len'])
        pixel_out = self.pixel_decoder(feats, batch_img_metas)
        device = pixel_out[0].device
        vocab_ids = vocab_ids.to(device)
        num_tokens = int(vocab_ids.max()) + 1
        start = torch.full((pixel_out[0].shape[0], 1), start_id, dtype=torch.long, device=device)
        cache: dict = {}
        prefix = start[:, :0]

        def step(ids: Tensor) -> Tensor:
            # A token's input may depend on the earlier ones (a causal text
            # encoder's features): embed the whole prefix, keep the new rows.
            nonlocal prefix
            prefix = torch.cat([prefix, ids], dim=1)
            tokens = embed_tokens(prefix)[:, -ids.shape[1]:]
            if cache:
                embeds = self.decode_next_caption_tokens(tokens, cache)
            else:
                out = self.decode(pixel_out, caption_tokens=tokens, cache=cache)
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
        """(B, D) L2-normalised retrieval embeddings of the image token."""
        if self.retrieval_cfg is None:
            raise RuntimeError('XDecoderHead was built without retrieval')
        return self.image_text_embeds(self(feats, batch_img_metas))[-1]
