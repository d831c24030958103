"""A Hugging Face transformers text encoder (BERT, RoBERTa, MiniLM, ...)."""
import os.path as osp
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.registry import MODELS
from mmfusion.utils.dependency import require

_POOLINGS = ('mean', 'cls')


@MODELS.register_module()
class HFTextEncoder(BaseEncoder):
    """``transformers.AutoModel`` + ``AutoTokenizer`` loaded from a local folder.

    Args:
        pretrained: a local model folder (``config.json``, weights, tokenizer
            files), e.g. a sentence-transformers model folder. Nothing is
            downloaded (``local_files_only=True``).
        pooling: ``'mean'``: average of the token features over real tokens
            (padding excluded), as sentence-transformers does; ``'cls'``: the
            first token's features.
        normalize: L2-normalise the pooled embedding.
        max_length: truncate texts to this many tokens (special tokens
            included); ``None`` takes the tokenizer's ``model_max_length``,
            capped at the model's ``max_position_embeddings``.
        model_kwargs: further ``AutoModel.from_pretrained`` arguments.
        **kwargs: :class:`BaseEncoder` options (``frozen``,
            ``trainable_modules``, ``lora``, ``frozen_dtype``, ``init_cfg``).
    """

    def __init__(self,
                 pretrained: str,
                 pooling: str = 'mean',
                 normalize: bool = False,
                 max_length: Optional[int] = None,
                 model_kwargs: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        transformers = require('transformers', 'HFTextEncoder')
        if pooling not in _POOLINGS:
            raise ValueError(f'HFTextEncoder: pooling must be one of {_POOLINGS}, got {pooling!r}')
        if not osp.isdir(pretrained):
            raise FileNotFoundError(f'HFTextEncoder: model folder not found: {pretrained} '
                                    '(only local folders are supported, nothing is downloaded)')
        self.pretrained = pretrained
        self.pooling = pooling
        self.normalize = normalize
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            pretrained, local_files_only=True)
        self.model = transformers.AutoModel.from_pretrained(
            pretrained, local_files_only=True, **(model_kwargs or {}))
        limit = getattr(self.model.config, 'max_position_embeddings', None)
        if max_length is None:
            # Tokenizers without a limit report a huge sentinel (int(1e30)).
            max_length = self.tokenizer.model_max_length
            if limit is not None:
                max_length = min(max_length, limit)
        self.max_length = int(max_length)
        self.embed_dim: int = self.model.config.hidden_size
        self._apply_freeze()

    # torch.compile: excluded, a Hugging Face tokenizer (Rust/Python), not tensor work.
    @torch.compiler.disable
    def tokenize(self, texts: Sequence[str]) -> Dict[str, Tensor]:
        """Pad/truncate a batch of texts to model inputs on the model's device."""
        if isinstance(texts, str):
            raise TypeError('HFTextEncoder expects a list of strings, got a single str')
        batch = self.tokenizer(list(texts), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors='pt')
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in batch.items()}

    def forward(self, texts: Sequence[str]) -> Dict[str, Tensor]:
        """Encode a batch of texts.

        Returns:
            dict with
            - ``pooled``: (B, H) sentence embedding (``pooling``, then
              L2-normalised if ``normalize``);
            - ``tokens``: (B, L, H) last hidden states, L the longest text
              in the batch after tokenization;
            - ``mask``: (B, L) bool, True on real tokens, False on padding.
        """
        batch = self.tokenize(texts)
        tokens = self.model(**batch).last_hidden_state
        mask = batch['attention_mask'].bool()
        if self.pooling == 'mean':
            weights = mask.unsqueeze(-1).to(tokens.dtype)
            # clamp: an all-padding row (never produced by the tokenizer) would divide by 0.
            pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        else:
            pooled = tokens[:, 0]
        if self.normalize:
            pooled = F.normalize(pooled, dim=-1)
        return dict(pooled=pooled, tokens=tokens, mask=mask)
