"""mmMamba: a decoder-only multimodal transformer (the teacher) and its
distillation into Mamba-2 layers (linear or hybrid students).

Liao et al., *Multimodal Mamba: Decoder-only Multimodal Model with Linear
Complexity via Quadratic to Linear Distillation*, 2025.
"""
import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from mmfusion.registry import MODELS, TOKENIZERS
from mmfusion.structures import FusionDataSample
from mmfusion.utils.checkpoint import load_state_dict_file, load_strict, select_prefix
from ..decoders.mamba import Mamba2Mixer
from ..layers import LlamaBlock, RMSNorm, RotaryEmbedding
from ..tokenizers.char_tokenizer import BOS, EOS, PAD
from ..utils import lengths_to_padding_mask, pad_sequences
from .zipper import next_token_loss

Caches = List[Dict[str, Tensor]]


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
class MultimodalCausalLM(BaseModel):
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
            keep softmax attention.
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
                 mamba: Optional[dict] = None,
                 max_new_tokens: int = 32,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if mixer not in ('attention', 'mamba2'):
            raise ValueError(f"mixer must be 'attention' or 'mamba2', got {mixer!r}")
        bad = [i for i in attention_layers if not 0 <= i < depth]
        if bad or (attention_layers and mixer == 'attention'):
            raise ValueError(f'attention_layers {list(attention_layers)} must index the {depth} '
                             "layers, and needs mixer='mamba2'")
        self.tokenizer = TOKENIZERS.build(tokenizer)
        self.attention_layers = sorted(attention_layers)
        self.max_new_tokens = max_new_tokens
        ffn_dim = ffn_dim or 8 * dim // 3
        self.patch_embed = PatchEmbed(img_size, patch_size, dim)
        self.embedding = nn.Embedding(self.tokenizer.vocab_size, dim, padding_idx=PAD)
        self.rope = RotaryEmbedding(dim // num_heads, max_len)
        self.layers = nn.ModuleList()
        for i in range(depth):
            ssm = None
            if mixer == 'mamba2' and i not in self.attention_layers:
                ssm = Mamba2Mixer(dim, num_heads, num_kv_heads, **(mamba or {}))
            self.layers.append(LlamaBlock(dim, num_heads, ffn_dim, num_kv_heads, mixer=ssm))
        self.norm = RMSNorm(dim)
        self.head = nn.Linear(dim, self.tokenizer.vocab_size, bias=False)
        self._init_parameters()

    @torch.no_grad()
    def _init_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
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
        for i, layer in enumerate(self.layers):
            x = layer(x, self.rope, padding_mask, None if caches is None else caches[i])
        return self.head(self.norm(x[:, x.shape[1] - ids.shape[1]:]))

    # -- modes -----------------------------------------------------------------
    def forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None,
                mode: str = 'tensor') -> Union[Dict, Tensor, List[FusionDataSample]]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':  # logits for the first captions, or after <s> alone
            if data_samples is not None:
                ids, mask = self.tokenize(self.pick_captions(data_samples, 'first'))
            else:
                ids = torch.full((inputs['img'].shape[0], 1), BOS, device=inputs['img'].device)
                mask = None
            return self.forward_sequence(inputs['img'], ids, mask)
        raise ValueError(f'invalid mode {mode!r}; expected "loss", "predict" or "tensor"')

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        ids, mask = self.tokenize(self.pick_captions(data_samples, 'random'))
        logits = self.forward_sequence(inputs['img'], ids, mask)
        return next_token_loss(logits[:, :-1], ids[:, 1:])

    def new_caches(self) -> Caches:
        """Empty per-layer generation state (filled by :meth:`forward_sequence`)."""
        return [{} for _ in self.layers]

    @torch.inference_mode()
    def generate(self, img: Tensor) -> Tensor:
        """Greedy captions: (B, <= 1 + max_new_tokens) ids from ``<s>``,
        padded after each sequence's ``</s>``. With attention layers, at most
        as many tokens as fit the RoPE range after the image."""
        limit = self.max_new_tokens
        if len(self.mamba_layers) < len(self.layers):
            limit = min(limit, self.rope.max_len - self.patch_embed.num_patches)
        caches = self.new_caches()
        seq = torch.full((img.shape[0], 1), BOS, dtype=torch.long, device=img.device)
        logits = self.forward_sequence(img, seq, caches=caches)
        done = torch.zeros(img.shape[0], dtype=torch.bool, device=img.device)
        for step in range(limit):
            nxt = logits[:, -1].argmax(-1).masked_fill(done, PAD)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            done |= nxt == EOS
            if done.all() or step == limit - 1:
                break
            logits = self.forward_sequence(None, nxt[:, None], caches=caches)
        return seq

    @torch.no_grad()
    def caption_nll(self, img: Tensor, references: Sequence[Sequence[str]]
                    ) -> Tuple[Tensor, Tensor]:
        """Teacher-forced negative log-likelihood of every reference caption,
        summed per image over the references' tokens (``</s>`` included):
        ``(nll (B,), num_tokens (B,))``."""
        owner = torch.tensor([i for i, refs in enumerate(references) for _ in refs],
                             device=img.device)
        ids, mask = self.tokenize([c for refs in references for c in refs])
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
        if data_samples is None:
            data_samples = [FusionDataSample() for _ in range(img.shape[0])]
        with_refs = [i for i, s in enumerate(data_samples) if s.get('gt_caption')]
        if with_refs:
            nll, count = self.caption_nll(
                img[with_refs], [data_samples[i].gt_caption for i in with_refs])
        for i, sample in enumerate(data_samples):
            sample.pred_caption = self.tokenizer.decode(seq[i, 1:].tolist())
        for j, i in enumerate(with_refs):
            data_samples[i].token_nll = float(nll[j])
            data_samples[i].num_tokens = int(count[j])
        return data_samples


@MODELS.register_module()
class MambaDistiller(BaseModel):
    """mmMamba's three-stage distillation of a :class:`MultimodalCausalLM`
    teacher into a Mamba-2 student of the same sizes.

    The student config is the teacher's with ``student`` overriding it
    (``dict(mixer='mamba2', attention_layers=[...])``), so both have the
    same widths by construction. :meth:`init_weights` loads the trained
    teacher from ``teacher_checkpoint`` and seeds the student from it (later
    stages then start from the previous stage through ``load_from``). The
    teacher is frozen and runs once per batch, without gradients.

    * ``stage=1`` / ``2``: per-layer MSE between each Mamba-2 mixer's output
      and the teacher attention output, both fed the teacher's input to that
      layer (the student's mixers are run alone on it). The loss is their
      mean: each logged ``loss_mse.<layer>`` is that layer's MSE divided by
      the number of Mamba-2 layers.
    * ``stage=3``: end-to-end ``KL(teacher || student)`` of the next-token
      distributions at the caption positions.

    Which student parameters train is ``trainable``: glob patterns over the
    student's parameter names (``layers.*.ssm.dt_bias``...); the paper's
    stage 1 trains the new SSM parameters (:attr:`Mamba2Mixer.NEW_PARAMS`),
    stages 2 and 3 all Mamba-2 mixer parameters. A pattern that matches
    nothing is an error. Prediction and evaluation use the student.

    Args:
        teacher (dict): ``MultimodalCausalLM`` config (``mixer='attention'``).
        student (dict): Overrides of the teacher config for the student.
        stage (int): 1, 2 or 3.
        trainable (list[str]): Student parameter patterns that train.
        teacher_checkpoint (str, optional): The trained teacher (an mmengine
            checkpoint of the teacher config); ``None`` keeps its
            initialisation (tests only).
        teacher_prefix (str, optional): Key prefix of the teacher in that file.
    """

    def __init__(self,
                 teacher: dict,
                 student: dict,
                 stage: int,
                 trainable: Sequence[str],
                 teacher_checkpoint: Optional[str] = None,
                 teacher_prefix: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if stage not in (1, 2, 3):
            raise ValueError(f'stage must be 1, 2 or 3, got {stage!r}')
        teacher = {k: v for k, v in teacher.items() if k != 'data_preprocessor'}
        self.teacher = MODELS.build(teacher)
        self.student = MODELS.build({**teacher, **student})
        if self.teacher.mamba_layers or not self.student.mamba_layers:
            raise ValueError("the teacher must be all attention and the student have Mamba-2 "
                             "layers (student=dict(mixer='mamba2', ...))")
        self.stage = stage
        self.teacher_checkpoint = teacher_checkpoint
        self.teacher_prefix = teacher_prefix
        self.trainable = list(trainable)
        self._set_trainable()

    def _set_trainable(self) -> None:
        self.teacher.requires_grad_(False)
        names = [n for n, _ in self.student.named_parameters()]
        unmatched = [p for p in self.trainable if not fnmatch.filter(names, p)]
        if unmatched or not self.trainable:
            raise ValueError(f'trainable patterns {unmatched or self.trainable} match no student '
                             f'parameter; names look like {names[:4]}')
        for name, param in self.student.named_parameters():
            param.requires_grad_(any(fnmatch.fnmatch(name, p) for p in self.trainable))

    def init_weights(self) -> None:
        super().init_weights()
        if self.teacher_checkpoint is not None:
            path = self.teacher_checkpoint
            state = select_prefix(load_state_dict_file(path), self.teacher_prefix, path,
                                  type(self).__name__)
            state = {k: v for k, v in state.items() if not k.startswith('data_preprocessor.')}
            load_strict(self.teacher, state, path, type(self).__name__,
                        hint='teacher_checkpoint must be a checkpoint of the teacher config')
        self.student.seed_from(self.teacher)

    def train(self, mode: bool = True) -> 'MambaDistiller':
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None,
                mode: str = 'tensor') -> Union[Dict, Tensor, List[FusionDataSample]]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.student(inputs, data_samples, mode)

    @torch.no_grad()
    def _run_teacher(self, img: Tensor, ids: Tensor, mask: Tensor
                     ) -> Tuple[Tensor, Dict[int, Tuple[Tensor, Tensor]]]:
        """Teacher logits and, in stages 1 and 2, each student Mamba layer's
        teacher attention (input, output)."""
        io, hooks = {}, []
        for i in (self.student.mamba_layers if self.stage in (1, 2) else []):
            def record(module, args, output, i=i):
                io[i] = (args[0], output)
            hooks.append(self.teacher.layers[i].attn.register_forward_hook(record))
        try:
            logits = self.teacher.forward_sequence(img, ids, mask)
        finally:
            for h in hooks:
                h.remove()
        return logits, io

    def loss(self, inputs: Dict, data_samples: List[FusionDataSample]) -> Dict[str, Tensor]:
        img = inputs['img']
        ids, mask = self.student.tokenize(self.student.pick_captions(data_samples, 'random'))
        t_logits, io = self._run_teacher(img, ids, mask)
        if self.stage in (1, 2):
            valid = ~F.pad(mask, (self.student.patch_embed.num_patches, 0), value=False)
            losses = {}
            for i, (x, target) in io.items():
                pred = self.student.layers[i].ssm(x)
                losses[f'loss_mse.{i}'] = F.mse_loss(pred[valid], target[valid]) / len(io)
            return losses
        s_logits = self.student.forward_sequence(img, ids, mask)
        target = ids[:, 1:] != PAD  # positions predicting a real token
        t_logp = F.log_softmax(t_logits[:, :-1][target], -1)
        s_logp = F.log_softmax(s_logits[:, :-1][target], -1)
        kl = F.kl_div(s_logp, t_logp, log_target=True, reduction='batchmean')
        agree = (s_logp.argmax(-1) == t_logp.argmax(-1)).float().mean()
        return dict(loss_kl=kl, agreement=agree.detach())
