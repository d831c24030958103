"""A bag-of-words text tower for CLIP-style contrastive training."""
from typing import Dict, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.models.encoders.openclip_utils import import_open_clip, read_openclip_checkpoint
from mmfusion.registry import MODELS
from mmfusion.utils import load_strict

from .prompt_ensemble import PromptEnsembleMixin, valid_token_mask


@MODELS.register_module()
class BagOfWordsTextEncoder(PromptEnsembleMixin, BaseEncoder):
    """Text embedding = projection of the mean over the text's tokens (start,
    words, end token; not the padding) of the layer-normalised token plus
    position embeddings. No attention: each token contributes on its own, as
    in the CLIP paper's "bag of words contrastive" text encoder (Radford et
    al., 2021, Fig. 2); ``positions=False`` is that encoder exactly. On
    open_clip's bundled BPE tokenizer.

    Why it exists: a CLIP trained from scratch on a few class phrasings (the
    depth-view teacher of ``configs/i2pmae``) learns a transformer tower that
    maps an unseen composition of seen words ("tall cone") onto a seen phrase
    ("tall pyramid"). A sum over tokens cannot do that: the new phrase's
    embedding is built from its words' contributions. Measured numbers are in
    ``configs/i2pmae/README.md``.

    Keys follow open_clip's CLIP text modules (``token_embedding``,
    ``positional_embedding``, ``ln_final``, ``text_projection``) and are
    initialised as open_clip does.

    Args:
        embed_dim: width of the joint image-text embedding.
        width: token embedding width.
        context_length: the tokenizer pads or cuts every text to this length
            (the end token stays last, as open_clip does).
        vocab_size: rows of the token embedding (open_clip's BPE: 49408).
        positions: add a learned embedding of each token's position.
        checkpoint: weights file (state dict or mmengine checkpoint) with
            exactly this module's keys after ``prefix`` is stripped.
        prefix: e.g. ``'text_encoder.'`` for an mmfusion CLIP checkpoint.
        **kwargs: :class:`BaseEncoder` options (``frozen`` ...).
    """

    def __init__(self,
                 embed_dim: int,
                 width: int,
                 context_length: int = 77,
                 vocab_size: int = 49408,
                 positions: bool = True,
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        open_clip = import_open_clip(type(self).__name__)
        self.embed_dim = int(embed_dim)
        self.context_length = int(context_length)
        self.tokenizer = open_clip.SimpleTokenizer(context_length=self.context_length)
        self.pad_id = 0  # open_clip's BPE tokenizer pads with 0
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = (nn.Parameter(torch.empty(self.context_length, width))
                                     if positions else None)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        if positions:
            nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width**-0.5)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, prefix)
        self._apply_freeze()

    def load_checkpoint(self, path: str, prefix: Optional[str] = None) -> None:
        """Load this tower's weights strictly."""
        name = type(self).__name__
        state_dict = read_openclip_checkpoint(path, prefix, name)
        load_strict(self, state_dict, path, name, hint='check embed_dim, width and prefix')

    # torch.compile: excluded, BPE tokenization is Python string work (and guards on the texts).
    @torch.compiler.disable
    def tokenize(self, texts: Union[str, Sequence[str]]) -> Tensor:
        """Texts -> ``(B, context_length)`` token ids on the encoder's device."""
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer(list(texts)).to(self.token_embedding.weight.device)

    def forward(self, texts: Union[Sequence[str], Tensor]) -> Dict[str, Tensor]:
        """Encode texts (a list of B strings or ``(B, L)`` token ids).

        Returns:
            dict with ``'pooled'`` ``(B, embed_dim)`` (not L2-normalised),
            ``'tokens'`` ``(B, L, width)`` (the normalised token embeddings)
            and ``'mask'`` ``(B, L)`` (True on the start, word and end tokens).
        """
        ids = texts if torch.is_tensor(texts) else self.tokenize(texts)
        if ids.dim() != 2:
            raise ValueError(f'{type(self).__name__} expects a list of strings or (B, L) token '
                             f'ids, got a tensor of shape {tuple(ids.shape)}')
        ids = ids.to(self.token_embedding.weight.device)
        mask = valid_token_mask(ids, self.pad_id)
        tokens = self.token_embedding(ids)
        if self.positional_embedding is not None:
            if ids.shape[1] != self.context_length:
                raise ValueError(f'{type(self).__name__}: token ids have length {ids.shape[1]}, '
                                 f'the model expects context_length {self.context_length}')
            tokens = tokens + self.positional_embedding
        tokens = self.ln_final(tokens)
        weights = mask.to(tokens.dtype).unsqueeze(-1)
        mean = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)
        return dict(pooled=mean @ self.text_projection, tokens=tokens, mask=mask)
