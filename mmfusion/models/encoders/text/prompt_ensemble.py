"""Zero-shot class embeddings by prompt ensembling, shared by the text towers
that return a CLIP embedding (``forward(texts)['pooled']``)."""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .prompt_templates import Template, fill_templates, get_templates


def valid_token_mask(ids: Tensor, pad_id: int) -> Tensor:
    """``(B, L)`` bool, True up to and including the last non-padding token:
    a token is valid when some non-pad token is at or after it (a BPE id equal
    to the pad id inside the text stays valid)."""
    return (ids != pad_id).flip(-1).cummax(-1).values.flip(-1)


class PromptEnsembleMixin:
    """``embed_class_names`` with a cache, for a text encoder module whose
    ``forward(texts)`` returns ``dict(pooled=(B, embed_dim))``.

    Results are cached while no gradient is needed, per (names, templates,
    device, dtype); the cache is cleared by weight loading and by ``train()``
    when some weight is trainable. A frozen tower keeps it: mmengine's
    IterBasedTrainLoop calls ``model.train()`` every iteration.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._class_embed_cache: Dict[tuple, Tensor] = {}

    def embed_class_names(self,
                          class_names: Sequence[str],
                          templates: Union[str, Sequence[Template]] = 'simple',
                          batch_size: Optional[int] = None) -> Tensor:
        """Zero-shot class embeddings by prompt ensembling.

        Every template is filled with every class name; the prompt embeddings
        are L2-normalised, averaged over templates, and normalised again.

        Args:
            class_names: C names.
            templates: a set name from ``TEMPLATE_SETS`` (``'simple'``,
                ``'imagenet'``, ``'synthshapes'``) or a list of ``'...{}...'``
                strings / callables.
            batch_size: prompts per forward; ``None`` encodes all at once.

        Returns:
            ``(C, embed_dim)`` unit-norm class embeddings. Unless a gradient
            is needed (grad mode on and trainable parameters), the result is
            cached until a weight load, or the next ``train()``/``eval()``
            call if some weight is trainable: zero-shot evaluation, and
            training with a frozen tower, embed each class list once.
        """
        templates = get_templates(templates)
        if torch.is_grad_enabled() and self._has_trainable_weights():
            return self._ensemble(class_names, templates, batch_size)
        return self._cached_ensemble(class_names, templates, batch_size)

    # torch.compile: excluded, a dict keyed by the class names; the tower runs once per list.
    @torch.compiler.disable
    def _cached_ensemble(self, class_names: Sequence[str], templates: Sequence[Template],
                         batch_size: Optional[int]) -> Tensor:
        param = next(self.parameters())
        key = (tuple(class_names), tuple(templates), str(param.device), param.dtype)
        if key not in self._class_embed_cache:
            with torch.no_grad():
                self._class_embed_cache[key] = self._ensemble(class_names, templates, batch_size)
        return self._class_embed_cache[key]

    def _ensemble(self, class_names: Sequence[str], templates: Sequence[str],
                  batch_size: Optional[int]) -> Tensor:
        prompts = fill_templates(templates, class_names)
        step = batch_size or len(prompts)
        emb = torch.cat([self(prompts[i:i + step])['pooled'] for i in range(0, len(prompts), step)])
        emb = F.normalize(emb, dim=-1).reshape(len(class_names), len(templates), -1).mean(dim=1)
        return F.normalize(emb, dim=-1)

    def _has_trainable_weights(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def train(self, mode: bool = True):
        if self._has_trainable_weights():
            self._class_embed_cache.clear()  # the weights may change from here on
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._class_embed_cache.clear()
        super()._load_from_state_dict(*args, **kwargs)
