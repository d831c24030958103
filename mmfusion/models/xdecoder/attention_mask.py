"""X-Decoder's self-attention mask over its joint query/token sequence.

The decoder's self-attention runs over one sequence laid out as::

    [object queries (N) | image query (1) | grounding queries (G) |
     grounding text tokens (Lg) | caption tokens (Lc)]

with these rules (Zou et al., 2023, §3.2):

- object queries attend to each other, the image query only to itself: the
  two do not see each other, so the image-level query (used for retrieval and
  captioning context) does not disturb mask decoding and vice versa;
- latent queries (object and image) never see text: they decode the same
  way whatever task's tokens are appended;
- grounding queries (a duplicate set of object queries) and the referring
  text tokens form one block that attends freely within itself (a sentence is
  given whole, so no causality), and sees no other token (in cross-attention
  the grounding queries read the image within their own masks, while the
  text tokens skip it: they are appended after cross-attention);
- caption tokens attend to every latent query and causally to earlier caption
  tokens (and themselves), so captioning is autoregressive.

Every row has at least one visible key (itself), so softmax never sees an
all-masked row.
"""
from typing import Dict

import torch


def xdecoder_layout(num_queries: int, num_grounding: int = 0, num_grounding_tokens: int = 0,
                    num_caption_tokens: int = 0) -> Dict[str, slice]:
    """Slices of each group in the joint sequence (the image query is one)."""
    sizes = [('object', num_queries), ('image', 1), ('grounding', num_grounding),
             ('grounding_tokens', num_grounding_tokens), ('caption', num_caption_tokens)]
    layout, start = {}, 0
    for name, size in sizes:
        if size < 0:
            raise ValueError(f'{name} size must be >= 0, got {size}')
        layout[name] = slice(start, start + size)
        start += size
    return layout


def xdecoder_self_attn_mask(num_queries: int, num_grounding: int = 0,
                            num_grounding_tokens: int = 0, num_caption_tokens: int = 0,
                            device: torch.device = None) -> torch.Tensor:
    """Boolean ``(L, L)`` mask, ``True`` where query row ``i`` may NOT attend
    to key column ``j`` (``torch.nn.MultiheadAttention``'s ``attn_mask``
    convention). ``L`` is the total length of :func:`xdecoder_layout`."""
    layout = xdecoder_layout(num_queries, num_grounding, num_grounding_tokens,
                             num_caption_tokens)
    length = layout['caption'].stop
    blocked = torch.ones(length, length, dtype=torch.bool, device=device)
    obj, img, grd, gtok, cap = (layout[k] for k in ('object', 'image', 'grounding',
                                                    'grounding_tokens', 'caption'))
    blocked[obj, obj] = False
    blocked[img, img] = False
    grounding_block = slice(grd.start, gtok.stop)
    blocked[grounding_block, grounding_block] = False
    blocked[cap, obj] = False
    blocked[cap, img] = False
    causal = torch.ones(num_caption_tokens, num_caption_tokens, dtype=torch.bool,
                        device=device).triu(1)
    blocked[cap, cap] = causal
    return blocked
