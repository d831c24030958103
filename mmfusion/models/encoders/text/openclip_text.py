"""open_clip text tower and tokenizer as a frozen encoder."""
from typing import Dict, Optional, Sequence, Union

import torch
from torch import Tensor

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.models.encoders.openclip_utils import (
    build_tower,
    import_open_clip,
    is_custom_text,
    read_openclip_checkpoint,
    resolve_model_cfg,
)
from mmfusion.registry import MODELS
from mmfusion.utils import load_strict

from .prompt_ensemble import PromptEnsembleMixin, valid_token_mask

# Top-level names open_clip's CLIP class gives its text modules.
_CLIP_TEXT_MODULES = ('transformer', 'token_embedding', 'positional_embedding', 'ln_final',
                      'text_projection')
# Checkpoint keys that belong to neither tower.
_NON_TEXT_PREFIXES = ('visual.', 'text_decoder.', 'logit_scale', 'logit_bias')


@MODELS.register_module()
class OpenCLIPTextEncoder(PromptEnsembleMixin, BaseEncoder):
    """The text tower of an open_clip model, with its tokenizer.

    Keys are open_clip's: for a ``CLIP`` model the text modules sit at top
    level (``transformer``, ``token_embedding``, ``positional_embedding``,
    ``ln_final``, ``text_projection``, plus the ``attn_mask`` buffer); for
    ``CustomTextCLIP``/``CoCa`` models under ``text``. A full open_clip
    checkpoint therefore loads by dropping ``visual.*``, ``text_decoder.*``
    and ``logit_scale``/``logit_bias``.

    Args:
        model_name: a built-in open_clip architecture, e.g. ``'ViT-B-16'``.
        model_cfg: or an open_clip model config (see
            :class:`OpenCLIPImageEncoder`).
        checkpoint: open_clip weights file (state dict or training
            checkpoint); its text keys are loaded strictly.
        prefix: keep only keys starting with this and strip it first, e.g.
            ``'text_encoder.'`` for an mmfusion checkpoint.
        context_length: override the config's context length (the tokenizer
            pads to it; a checkpoint's positional embedding is resized the way
            open_clip's ``create_model(force_context_length=...)`` does).
        pretrained_tag: open_clip pretrained tag of the checkpoint, only to
            check its QuickGELU flag against the model (metadata only).
        **kwargs: :class:`BaseEncoder` options (frozen, trainable_modules,
            lora, frozen_dtype, init_cfg).

    Attributes:
        tokenizer: open_clip's tokenizer for this model (texts -> ``(B, L)``
            token ids; the CLIP BPE vocabulary ships with open_clip).
        embed_dim: width of the joint image-text embedding.
        context_length: ``L``.
    """

    def __init__(self,
                 model_name: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 context_length: Optional[int] = None,
                 pretrained_tag: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        open_clip = import_open_clip(name)
        cfg, _ = resolve_model_cfg(name, model_name, model_cfg, pretrained_tag,
                                   tower='text')
        text_cfg = cfg['text_cfg']
        if context_length is not None:
            text_cfg['context_length'] = int(context_length)
        self.custom_text = is_custom_text(cfg)
        if self.custom_text:
            text_cfg['output_tokens'] = True  # the tower then returns (pooled, tokens)
            self.text = build_tower(cfg, 'text', name)
        else:
            text = build_tower(cfg, 'text', name)
            # Same attributes open_clip's CLIP copies from the tower, so keys match.
            for attr in _CLIP_TEXT_MODULES:
                setattr(self, attr, getattr(text, attr))
            self.register_buffer('attn_mask', text.attn_mask, persistent=False)
            self.text_pool_type = text.pool_type
            self.text_eos_id = text.eos_id
        self.embed_dim = int(cfg['embed_dim'])
        self.context_length = int(text_cfg.get('context_length', 77))
        self.tokenizer = self._build_tokenizer(open_clip, model_name, cfg)
        self.pad_id = self._pad_id_of(self.tokenizer)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, prefix)
        self._apply_freeze()

    @staticmethod
    def _build_tokenizer(open_clip, model_name: Optional[str], cfg: dict):
        length = cfg['text_cfg'].get('context_length', 77)
        if model_name is not None:
            return open_clip.get_tokenizer(model_name, context_length=length)
        text_cfg = cfg['text_cfg']
        kwargs = dict(text_cfg.get('tokenizer_kwargs') or {})
        if text_cfg.get('hf_tokenizer_name'):
            return open_clip.tokenizer.HFTokenizer(
                text_cfg['hf_tokenizer_name'], context_length=length,
                tokenizer_mode=text_cfg.get('tokenizer_mode'), **kwargs)
        return open_clip.SimpleTokenizer(context_length=length, **kwargs)

    @staticmethod
    def _pad_id_of(tokenizer) -> int:
        # HF-backed tokenizers carry their pad id; open_clip's BPE pads with 0.
        pad = getattr(getattr(tokenizer, 'tokenizer', None), 'pad_token_id', None)
        return int(pad) if pad is not None else 0

    # -- weights -----------------------------------------------------------
    def load_checkpoint(self, path: str, prefix: Optional[str] = None) -> None:
        """Load the text subset of an open_clip checkpoint strictly."""
        from open_clip.model import resize_text_pos_embed
        name = type(self).__name__
        state_dict = read_openclip_checkpoint(path, prefix, name)
        text = {k: v for k, v in state_dict.items() if not k.startswith(_NON_TEXT_PREFIXES)}
        if not text:
            raise KeyError(f'{name}: checkpoint {path} has no text-tower keys '
                           f'(some keys: {sorted(state_dict)[:5]})')
        # Like open_clip's loader: accept either text layout (CLIP vs CustomTextCLIP).
        has_text_prefix = any(k.startswith('text.') for k in text)
        if self.custom_text and not has_text_prefix:
            text = {(f'text.{k}' if k.startswith(_CLIP_TEXT_MODULES) else k): v
                    for k, v in text.items()}
        elif not self.custom_text and has_text_prefix:
            text = {k[len('text.'):] if k.startswith('text.') else k: v for k, v in text.items()}
        own = self.state_dict()
        # transformers>=4.31 no longer stores position_ids (open_clip drops them too).
        text = {k: v for k, v in text.items() if not k.endswith('position_ids') or k in own}
        load_strict(self, text, path, name, hint='check model_name/model_cfg and prefix',
                    adapt=lambda sd: resize_text_pos_embed(sd, self))

    # -- forward -----------------------------------------------------------
    # torch.compile: excluded, BPE tokenization is Python string work (and guards on the texts).
    @torch.compiler.disable
    def tokenize(self, texts: Union[str, Sequence[str]],
                 context_length: Optional[int] = None) -> Tensor:
        """Texts -> ``(B, context_length)`` token ids on the encoder's device
        (start token, BPE tokens, end token, padding; longer texts are cut so
        that the end token stays last, as open_clip does). ``context_length``
        other than the model's is for token sequences that do not go through
        this tower (e.g. caption targets)."""
        if isinstance(texts, str):
            texts = [texts]
        if context_length is None:
            ids = self.tokenizer(list(texts))
        else:
            ids = self.tokenizer(list(texts), context_length=context_length)
        return ids.to(self._device())

    # torch.compile: excluded, BPE tokenization of a string.
    @torch.compiler.disable
    def num_tokens(self, text: str) -> int:
        """Tokens ``text`` takes with its start and end tokens (may exceed
        ``context_length``: compare to find texts that would be cut)."""
        return len(self.tokenizer.encode(text)) + 2

    @property
    def token_embedding_layer(self) -> torch.nn.Embedding:
        """The tower's input token embedding (vocabulary x width)."""
        return self.text.token_embedding if self.custom_text else self.token_embedding

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, texts: Union[Sequence[str], Tensor]) -> Dict[str, Tensor]:
        """Encode texts.

        Args:
            texts: list of B strings, or ``(B, L)`` token ids from
                :meth:`tokenize`.

        Returns:
            dict with

            - ``'pooled'``: ``(B, embed_dim)`` exactly open_clip's
              ``encode_text`` on these tokens (not L2-normalised);
            - ``'tokens'``: ``(B, L, width)`` final hidden states (after the
              final LayerNorm, before the projection);
            - ``'mask'``: ``(B, L)`` bool, True up to and including the last
              non-padding token (start, words, end token).
        """
        ids = texts if torch.is_tensor(texts) else self.tokenize(texts)
        if ids.dim() != 2:
            raise ValueError(f'{type(self).__name__} expects a list of strings or (B, L) token '
                             f'ids, got a tensor of shape {tuple(ids.shape)}')
        ids = ids.to(self._device())
        if self.custom_text:
            pooled, tokens = self.text(ids)
        else:
            pooled, tokens = self._encode_clip_layout(ids)
        return dict(pooled=pooled, tokens=tokens, mask=valid_token_mask(ids, self.pad_id))

    def _encode_clip_layout(self, ids: Tensor):
        """open_clip ``CLIP.encode_text``, also returning the hidden states."""
        from open_clip.transformer import text_global_pool
        if ids.shape[1] != self.positional_embedding.shape[0]:
            raise ValueError(f'{type(self).__name__}: token ids have length {ids.shape[1]}, the '
                             f'model expects context_length {self.positional_embedding.shape[0]}')
        dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(ids).to(dtype) + self.positional_embedding.to(dtype)
        x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask))
        pooled = text_global_pool(x, ids, self.text_pool_type, eos_token_id=self.text_eos_id)
        if self.text_projection is not None:
            if isinstance(self.text_projection, torch.nn.Linear):
                pooled = self.text_projection(pooled)
            else:
                pooled = pooled @ self.text_projection
        return pooled, x
