"""mmMamba's decoder-only multimodal model: the transformer teacher and its
Mamba-2 students (Liao et al., *Multimodal Mamba: Decoder-only Multimodal
Model with Linear Complexity via Quadratic to Linear Distillation*, 2025)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.models.common.causal_lm import Caches, CausalLMStack
from mmfusion.models.common.generation import greedy_decode
from mmfusion.models.common.sequence import (
    BOS,
    EOS,
    PAD,
    lengths_to_padding_mask,
    next_token_loss,
    pad_sequences,
)
from mmfusion.registry import MODELS, TOKENIZERS
from mmfusion.structures import FusionDataSample
from mmfusion.utils import load_strict

from .mamba2_mixer import Mamba2Mixer
from .official import convert_official_lm

# torch.compile: the SSD scan runs eagerly without grad: its inference path (ssd.py) writes into
# preallocated buffers (out=) and views them, which AOTAutograd's functionalisation rejects.
Mamba2Mixer.compile_exclude_without_grad = ('_scan', )


class PatchEmbed(nn.Module):
    """Non-overlapping image patches -> tokens, through a two-step stem
    (``patch_size // 4`` then 4) so each token sees exactly its own patch,
    plus a learned position embedding per patch."""

    def __init__(self, img_size: int, patch_size: int, dim: int) -> None:
        super().__init__()
        if patch_size % 4 or img_size % patch_size:
            raise ValueError(f'patch_size {patch_size} must divide by 4 and divide img_size '
                             f'{img_size}')
        self.img_size = img_size
        self.num_patches = (img_size // patch_size) ** 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, dim // 2, patch_size // 4, stride=patch_size // 4), nn.GELU(),
            nn.Conv2d(dim // 2, dim, 4, stride=4))
        self.pos_embed = nn.Parameter(torch.randn(1, self.num_patches, dim) * 0.02)

    def forward(self, img: Tensor) -> Tensor:
        if img.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f'images must be {self.img_size}x{self.img_size} (resize them in '
                             f'the pipeline), got {tuple(img.shape[-2:])}')
        return self.stem(img).flatten(2).transpose(1, 2) + self.pos_embed


@MODELS.register_module()
class MultimodalCausalLM(CausalLMStack, FusionBaseModel):
    """Decoder-only image captioner: image patch tokens, then the caption's
    word tokens, in one causal sequence through Llama-style blocks.

    ``mixer='attention'`` (the teacher): every block has grouped-query
    softmax attention with RoPE. ``mixer='mamba2'`` (an mmMamba student):
    blocks get a :class:`Mamba2Mixer` (no positions, no length limit), except
    the layers listed in ``attention_layers``, which keep attention (the
    hybrid). Generation is greedy, with a key/value cache in attention layers
    and a constant-size recurrent state in Mamba-2 layers.

    Prediction writes ``pred_caption`` and, when the sample has references
    (``gt_caption``), the teacher-forced ``token_nll`` (summed over the
    references' tokens) and ``num_tokens``, for :class:`TokenPerplexityMetric`.

    Args:
        tokenizer (dict): A tokenizer config (e.g. ``WordTokenizer``).
        img_size (int): Input images are ``img_size`` square.
        patch_size (int): Patch side (a multiple of 4).
        dim, depth, num_heads, num_kv_heads, ffn_dim: Block sizes
            (``ffn_dim`` defaults to ``8 * dim // 3``).
        max_len (int): RoPE range: the longest sequence attention layers take.
        mixer (str): ``'attention'`` or ``'mamba2'``.
        attention_layers (list[int]): With ``mixer='mamba2'``, the layers that
            keep softmax attention (an explicit placement).
        attention_every (int, optional): With ``mixer='mamba2'``, keep softmax
            attention in every ``k``-th layer from layer 0 (0, k, 2k, ...), the
            official hybrid placement (``softmax_attention: [0,4,8,...,28]``
            in ``configs/experiment/distill_stage3_mmMamba.yaml``). Exclusive
            with ``attention_layers``.
        mamba (dict): :class:`Mamba2Mixer` options (``chunk_size``,
            ``conv_kernel``, ``use_kernel``).
        max_new_tokens (int): Decoding limit.
    """

    def __init__(self,
                 tokenizer: dict,
                 img_size: int = 96,
                 patch_size: int = 12,
                 dim: int = 128,
                 depth: int = 6,
                 num_heads: int = 4,
                 num_kv_heads: Optional[int] = 2,
                 ffn_dim: Optional[int] = None,
                 max_len: int = 128,
                 mixer: str = 'attention',
                 attention_layers: Sequence[int] = (),
                 attention_every: Optional[int] = None,
                 mamba: Optional[dict] = None,
                 max_new_tokens: int = 32,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if mixer not in ('attention', 'mamba2'):
            raise ValueError(f"mixer must be 'attention' or 'mamba2', got {mixer!r}")
        if attention_every is not None:
            if attention_layers or attention_every < 1:
                raise ValueError(f'attention_every must be a positive layer step and replaces '
                                 f'attention_layers, got {attention_every!r} and '
                                 f'{list(attention_layers)}')
            attention_layers = range(0, depth, attention_every)
        bad = [i for i in attention_layers if not 0 <= i < depth]
        if bad or (attention_layers and mixer == 'attention'):
            raise ValueError(f'attention_layers {list(attention_layers)} must index the {depth} '
                             "layers, and needs mixer='mamba2'")
        self.tokenizer = TOKENIZERS.build(tokenizer)
        self.attention_layers = sorted(attention_layers)
        self.max_new_tokens = max_new_tokens
        ffn_dim = ffn_dim or 8 * dim // 3
        self.patch_embed = PatchEmbed(img_size, patch_size, dim)

        def ssm(i: int) -> Optional[Mamba2Mixer]:
            if mixer == 'mamba2' and i not in self.attention_layers:
                return Mamba2Mixer(dim, num_heads, num_kv_heads, **(mamba or {}))
            return None

        self.build_stack(self.tokenizer.vocab_size, dim, depth, num_heads, ffn_dim,
                         num_kv_heads, max_len, mixer=ssm, padding_idx=PAD)
        self.head = nn.Linear(dim, self.tokenizer.vocab_size, bias=False)
        self._init_parameters()

    @torch.no_grad()
    def _init_parameters(self) -> None:
        self.reset_stack_parameters()
        self.embedding.weight[PAD].zero_()
        for layer in self.layers:
            if isinstance(layer.mixer, Mamba2Mixer):
                layer.mixer.reset_new_parameters()

    @property
    def mamba_layers(self) -> List[int]:
        return [i for i, layer in enumerate(self.layers) if isinstance(layer.mixer, Mamba2Mixer)]

    # -- seeding -------------------------------------------------------------
    @torch.no_grad()
    def seed_from(self, teacher: 'MultimodalCausalLM') -> None:
        """Copy everything from an all-attention ``teacher`` of the same sizes;
        each Mamba-2 layer is seeded from the teacher's attention there
        (:meth:`Mamba2Mixer.seed_from_attention`)."""
        if teacher.mamba_layers:
            raise ValueError('seed_from needs an all-attention teacher')
        theirs = teacher.state_dict()
        own = self.state_dict()
        shared = {k: v for k, v in theirs.items() if k in own}
        wrong = [k for k, v in shared.items() if v.shape != own[k].shape]
        ssm_keys = [k for k in own if '.ssm.' in k]
        left = [k for k in own if k not in shared and k not in ssm_keys]
        if wrong or left or len(self.layers) != len(teacher.layers):
            raise ValueError(f'student and teacher sizes differ: shapes of {wrong[:5]}, keys '
                             f'missing from the teacher {left[:5]}')
        self.load_state_dict(shared, strict=False)
        for i in self.mamba_layers:
            self.layers[i].ssm.seed_from_attention(teacher.layers[i].attn)

    @torch.no_grad()
    def load_official(self, state_dict: Dict[str, Tensor], source: str = 'checkpoint',
                      prefix: Optional[str] = None) -> List[str]:
        """Load an official InternLM2 language model (the HoVLE teacher's
        layout: fused ``wqkv``, ``wo``, ``w1/w2/w3``, ``attention_norm``,
        ``ffn_norm``, ``tok_embeddings``, ``output``) or a distilled mmMamba
        one (:func:`~.official.convert_official_lm`) into this model's blocks,
        strictly: every key but the patch embedding's (HoVLE embeds images
        its own way) must be there with its shape, and no other.

        Args:
            state_dict: the official weights.
            source: names the file in errors.
            prefix: e.g. ``'language_model.'`` for a HoVLE / mmMamba chat model.

        Returns:
            The keys that kept their values (the patch embedding's).
        """
        mixer = self.layers[0].mixer
        converted, _ = convert_official_lm(state_dict, mixer.num_heads, mixer.num_kv_heads,
                                           prefix, source)
        return load_strict(self, converted, source, type(self).__name__,
                           hint='the model sizes (dim, depth, heads, kv heads, ffn_dim, '
                                'vocabulary) and attention_layers must match the checkpoint',
                           may_miss=lambda key: key.startswith('patch_embed.'))

    # -- sequences -----------------------------------------------------------
    def pick_captions(self, data_samples: Sequence[FusionDataSample], which: str) -> List[str]:
        """One reference caption per sample: ``'random'`` (training) or
        ``'first'``."""
        out = []
        for sample in data_samples:
            refs = sample.get('gt_caption')
            if not refs:
                raise ValueError(f'sample {sample.metainfo.get("img_path")} has no gt_caption; '
                                 'captioning needs a COCO captions file for the dataset')
            k = int(torch.randint(len(refs), ())) if which == 'random' else 0
            out.append(refs[k])
        return out

    # torch.compile: excluded, picks caption strings and tokenizes them (Python string work).
    @torch.compiler.disable
    def caption_ids(self, data_samples: Sequence[FusionDataSample], which: str
                    ) -> Tuple[Tensor, Tensor]:
        """:meth:`tokenize` of :meth:`pick_captions`, in one excluded call: a traced frame
        holding the caption strings would be guarded on them (a recompile every batch)."""
        return self.tokenize(self.pick_captions(data_samples, which))

    # torch.compile: excluded, word tokenization is Python string work.
    @torch.compiler.disable
    def tokenize(self, captions: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """``<s> words </s>`` per caption, padded: (B, T) ids and (B, T) padding mask."""
        device = self.embedding.weight.device
        ids, lengths = pad_sequences(
            [torch.tensor(self.tokenizer.encode(c), device=device) for c in captions], PAD)
        return ids.long(), lengths_to_padding_mask(lengths, ids.shape[1])

    def forward_sequence(self, img: Optional[Tensor], ids: Tensor,
                         padding_mask: Optional[Tensor] = None,
                         caches: Optional[Caches] = None) -> Tensor:
        """Logits (B, T, V) at the text positions of ``[patches(img), ids]``.

        ``img=None`` continues a cached sequence with ``ids`` only.
        ``padding_mask`` (B, T) marks padded text positions (teacher forcing
        only: a cache would keep the padding in its state).
        """
        if caches is not None and padding_mask is not None:
            raise ValueError('forward_sequence: a padding mask cannot be combined with '
                             'generation caches')
        x = self.embedding(ids)
        if img is not None:
            patches = self.patch_embed(img)
            x = torch.cat([patches, x], dim=1)
            if padding_mask is not None:
                padding_mask = F.pad(padding_mask, (patches.shape[1], 0), value=False)
        x, _ = self.run_layers(x, padding_mask, caches)
        return self.head(self.norm(x[:, x.shape[1] - ids.shape[1]:]))

    # -- modes -----------------------------------------------------------------
    def _forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                 ) -> Tensor:
        """Logits for the first captions, or after ``<s>`` alone."""
        if data_samples is not None:
            ids, mask = self.caption_ids(data_samples, 'first')
        else:
            ids = torch.full((inputs['img'].shape[0], 1), BOS, device=inputs['img'].device)
            mask = None
        return self.forward_sequence(inputs['img'], ids, mask)

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        ids, mask = self.caption_ids(data_samples, 'random')
        logits = self.forward_sequence(inputs['img'], ids, mask)
        return next_token_loss(logits[:, :-1], ids[:, 1:])

    @torch.inference_mode()
    def generate(self, img: Tensor) -> Tensor:
        """Greedy captions: (B, <= 1 + max_new_tokens) ids from ``<s>``,
        padded after each sequence's ``</s>``. With attention layers, at most
        as many tokens as fit the RoPE range after the image."""
        limit = self.max_new_tokens
        if len(self.mamba_layers) < len(self.layers):
            limit = min(limit, self.rope.max_len - self.patch_embed.num_patches)
        caches = self.new_caches()
        pending_img: Optional[Tensor] = img  # the image enters with the first step only

        def step(ids: Tensor) -> Tensor:
            nonlocal pending_img
            logits = self.forward_sequence(pending_img, ids, caches=caches)[:, -1]
            pending_img = None
            return logits

        prompt = torch.full((img.shape[0], 1), BOS, dtype=torch.long, device=img.device)
        return greedy_decode(step, prompt, limit, EOS, PAD)

    @torch.no_grad()
    def caption_nll(self, img: Tensor, references: Sequence[Sequence[str]]
                    ) -> Tuple[Tensor, Tensor]:
        """Teacher-forced negative log-likelihood of every reference caption,
        summed per image over the references' tokens (``</s>`` included):
        ``(nll (B,), num_tokens (B,))``."""
        return self._caption_nll(img, *self._reference_ids(references, img.device))

    # torch.compile: excluded, reads and tokenizes the reference strings.
    @torch.compiler.disable
    def _reference_ids(self, references: Sequence[Sequence[str]], device: torch.device
                       ) -> Tuple[Tensor, Tensor, Tensor]:
        """Per reference caption its image index, token ids and padding mask."""
        owner = torch.tensor([i for i, refs in enumerate(references) for _ in refs],
                             device=device)
        ids, mask = self.tokenize([c for refs in references for c in refs])
        return owner, ids, mask

    @torch.no_grad()
    def _caption_nll(self, img: Tensor, owner: Tensor, ids: Tensor, mask: Tensor
                     ) -> Tuple[Tensor, Tensor]:
        logits = self.forward_sequence(img[owner], ids, mask)
        target = ids[:, 1:]
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), target, ignore_index=PAD,
                              reduction='none').sum(1)
        count = (target != PAD).sum(1)
        zeros = torch.zeros(img.shape[0], device=img.device)
        return zeros.index_add(0, owner, nll), zeros.index_add(0, owner, count.float())

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                ) -> List[FusionDataSample]:
        img = inputs['img']
        seq = self.generate(img)
        data_samples = self.fill_data_samples(data_samples, img.shape[0])
        with_refs, refs = self._references(data_samples, img.device)
        nll = count = None
        if with_refs:
            nll, count = self._caption_nll(img[with_refs], *refs)
        return self._pack(seq, data_samples, with_refs, nll, count)

    # torch.compile: excluded, reads and tokenizes the reference caption strings.
    @torch.compiler.disable
    def _references(self, data_samples: Sequence[FusionDataSample], device: torch.device
                    ) -> Tuple[List[int], Optional[Tuple[Tensor, Tensor, Tensor]]]:
        """The samples with reference captions and :meth:`_reference_ids` of those."""
        with_refs = [i for i, s in enumerate(data_samples) if s.get('gt_caption')]
        if not with_refs:
            return with_refs, None
        return with_refs, self._reference_ids([data_samples[i].gt_caption for i in with_refs],
                                              device)

    # torch.compile: excluded, decodes ids to caption strings.
    @torch.compiler.disable
    def _pack(self, seq: Tensor, data_samples: List[FusionDataSample], with_refs: List[int],
              nll: Optional[Tensor], count: Optional[Tensor]) -> List[FusionDataSample]:
        for i, sample in enumerate(data_samples):
            sample.pred_caption = self.tokenizer.decode(seq[i, 1:].tolist())
        for j, i in enumerate(with_refs):
            data_samples[i].token_nll = float(nll[j])
            data_samples[i].num_tokens = int(count[j])
        return data_samples
