"""The causal language-model stack shared by Zipper's towers and mmMamba's
decoders, Zipper's registered tower built on it, and the loader of
Hugging Face Llama checkpoints into that tower."""
import json
import os.path as osp
import re
from typing import Callable, Dict, List, Optional, Tuple

import torch.nn as nn
from torch import Tensor

from mmfusion.models.encoders import BaseEncoder
from mmfusion.models.layers import LlamaBlock, RMSNorm, RotaryEmbedding
from mmfusion.registry import MODELS
from mmfusion.utils import load_strict

Caches = List[Dict[str, Tensor]]


class CausalLMStack:
    """Token embedding -> Llama-style blocks (RMSNorm, RoPE, grouped-query
    attention or another mixer, SwiGLU) -> final RMSNorm, built onto the
    ``nn.Module`` that mixes this in.

    The parts are attributes of the host (``embedding``, ``rope``,
    ``layers.<i>``, ``norm``), not of a sub-module, so parameter names, and
    with them checkpoints, are the host's own. The output layer is the
    host's: Zipper's towers tie it to the embedding, mmMamba's decoder has a
    separate ``head``.
    """

    def build_stack(self, vocab_size: int, dim: int, depth: int, num_heads: int, ffn_dim: int,
                    num_kv_heads: Optional[int], max_len: int,
                    mixer: Optional[Callable[[int], Optional[nn.Module]]] = None,
                    padding_idx: Optional[int] = None, rope_theta: float = 10000.0,
                    norm_eps: float = 1e-6) -> None:
        """Create the parts; ``mixer(i)`` gives layer ``i`` a token mixer
        other than attention (None: attention); ``rope_theta`` and
        ``norm_eps`` as Llama's ``rope_theta`` and ``rms_norm_eps``."""
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)
        self.rope = RotaryEmbedding(dim // num_heads, max_len, theta=rope_theta)
        self.layers = nn.ModuleList(
            [LlamaBlock(dim, num_heads, ffn_dim, num_kv_heads, eps=norm_eps,
                        mixer=mixer(i) if mixer is not None else None) for i in range(depth)])
        self.norm = RMSNorm(dim, norm_eps)

    def reset_stack_parameters(self) -> None:
        """Llama-style init: normal(0, 0.02) for every embedding and linear
        weight of the host (the stack's, its output layer's, a mixer's)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def run_layers(self, x: Tensor, padding_mask: Optional[Tensor] = None,
                   caches: Optional[Caches] = None) -> Tuple[Tensor, List[Tensor]]:
        """The blocks over embedded ``x`` (B, L, dim): the last output and
        every hidden state (the input, then each block's output).

        ``caches`` (one dict per layer, filled in place) continues a
        generation; ``padding_mask`` (B, L) is True at padding.
        """
        hidden_states = [x]
        for i, layer in enumerate(self.layers):
            x = layer(x, self.rope, padding_mask, None if caches is None else caches[i])
            hidden_states.append(x)
        return x, hidden_states

    def new_caches(self) -> Caches:
        """Empty per-layer generation state (filled by :meth:`run_layers`)."""
        return [{} for _ in self.layers]


@MODELS.register_module()
class CausalDecoderTower(CausalLMStack, BaseEncoder):
    """Token embedding -> Llama-style blocks (RMSNorm, RoPE, grouped-query
    attention, SwiGLU) -> RMSNorm -> next-token logits.

    A Zipper tower is pretrained alone on its modality, then fused with
    another tower by ``ZipperDecoder``, which runs the blocks one by one
    (``embed``, ``layers``, ``logits``) to interleave cross-attention. It is a
    :class:`BaseEncoder`, so ``frozen=True`` (and ``trainable_modules``,
    ``lora``, ``frozen_dtype``) freezes it as any encoder.

    Args:
        vocab_size (int): Tokens of the modality (text pieces or speech units).
        dim (int): Width.
        depth (int): Number of blocks.
        num_heads (int): Query heads.
        ffn_dim (int): SwiGLU hidden width.
        num_kv_heads (int, optional): Key/value heads (grouped-query attention).
        max_len (int): Longest sequence (RoPE range).
        tie_embeddings (bool): Output layer shares the embedding matrix.
        rope_theta (float): RoPE frequency base.
        norm_eps (float): RMSNorm epsilon.
        hf_checkpoint (str, optional): A Hugging Face ``LlamaForCausalLM``
            folder whose weights are loaded (before freezing or LoRA); the
            other arguments must describe its architecture, which
            :func:`hf_llama_tower` (registered as ``'HFLlamaTower'``) reads
            from its ``config.json``.
        frozen (bool): Trainable by default (towers are trained here).
        **kwargs: :class:`BaseEncoder` options.
    """

    def __init__(self,
                 vocab_size: int,
                 dim: int = 256,
                 depth: int = 4,
                 num_heads: int = 4,
                 ffn_dim: int = 704,
                 num_kv_heads: Optional[int] = None,
                 max_len: int = 1024,
                 tie_embeddings: bool = True,
                 rope_theta: float = 10000.0,
                 norm_eps: float = 1e-6,
                 hf_checkpoint: Optional[str] = None,
                 frozen: bool = False,
                 **kwargs) -> None:
        super().__init__(frozen=frozen, **kwargs)
        self.vocab_size = vocab_size
        self.dim = dim
        self.depth = depth
        self.build_stack(vocab_size, dim, depth, num_heads, ffn_dim, num_kv_heads, max_len,
                         rope_theta=rope_theta, norm_eps=norm_eps)
        self.lm_head = None if tie_embeddings else nn.Linear(dim, vocab_size, bias=False)
        self.reset_stack_parameters()
        if hf_checkpoint is not None:
            path, state_dict = _read_hf_safetensors(hf_checkpoint)
            load_strict(self, hf_llama_state_dict(state_dict, tie_embeddings, path), path,
                        type(self).__name__, hint='config.json and the weights disagree')
        self._apply_freeze()

    def embed(self, tokens: Tensor) -> Tensor:
        if tokens.numel():
            low, high = (int(t) for t in tokens.aminmax())
            if low < 0 or high >= self.vocab_size:
                raise ValueError(f'{type(self).__name__}: token ids must lie in [0, '
                                 f'{self.vocab_size}), got [{low}, {high}]')
        return self.embedding(tokens)

    def logits(self, hidden: Tensor) -> Tensor:
        hidden = self.norm(hidden)
        weight = self.embedding.weight if self.lm_head is None else self.lm_head.weight
        return hidden @ weight.t()

    def forward(self, tokens: Tensor, key_padding_mask: Optional[Tensor] = None,
                caches: Optional[Caches] = None) -> Dict:
        """
        Args:
            tokens (Tensor): (B, L) token ids, padding after each sequence.
            key_padding_mask (Tensor, optional): (B, L) bool, True at padding.
            caches (list[dict], optional): :meth:`new_caches`, for
                generation: ``tokens`` continue what they hold.

        Returns:
            dict: ``logits`` (B, L, vocab_size) predicting the next token, and
            ``hidden_states``: the embedding output then every block's
            output, each (B, L, dim).
        """
        x, hidden_states = self.run_layers(self.embed(tokens), key_padding_mask, caches)
        return dict(logits=self.logits(x), hidden_states=hidden_states)


# Hugging Face Llama parameter names -> CausalDecoderTower's.
_HF_LLAMA_KEYS = [
    (re.compile(r'^model\.embed_tokens\.'), 'embedding.'),
    (re.compile(r'^model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.'), r'layers.\1.attn.\2_proj.'),
    (re.compile(r'^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.'), r'layers.\1.ffn.\2.'),
    (re.compile(r'^model\.layers\.(\d+)\.input_layernorm\.'), r'layers.\1.attn_norm.'),
    (re.compile(r'^model\.layers\.(\d+)\.post_attention_layernorm\.'), r'layers.\1.ffn_norm.'),
    (re.compile(r'^model\.norm\.'), 'norm.'),
    (re.compile(r'^lm_head\.'), 'lm_head.'),
]


def _hf_llama_arch(config: dict, path: str) -> dict:
    """CausalDecoderTower arguments from a Llama ``config.json`` (as a dict;
    ``path`` names it in errors). Refuses what the tower does not compute."""
    if config.get('model_type') != 'llama':
        raise ValueError(f'{path}: model_type is {config.get("model_type")!r}, expected '
                         "'llama' (a Llama-family LlamaForCausalLM checkpoint; architectures: "
                         f'{config.get("architectures")})')
    required = ('vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
                'num_attention_heads')
    missing = [k for k in required if k not in config]
    if missing:
        raise KeyError(f'{path}: missing {missing}, needed for a Llama tower')
    heads = config['num_attention_heads']
    unsupported = []
    if config.get('hidden_act', 'silu') != 'silu':
        unsupported.append(f'hidden_act={config["hidden_act"]!r} (expected \'silu\')')
    for flag in ('attention_bias', 'mlp_bias'):
        if config.get(flag):
            unsupported.append(f'{flag}=true (expected false)')
    head_dim = config.get('head_dim')
    if head_dim is not None and head_dim * heads != config['hidden_size']:
        unsupported.append(f'head_dim={head_dim} (expected hidden_size / num_attention_heads'
                           f' = {config["hidden_size"] // heads})')
    # transformers >= 5 nests RoPE settings in rope_parameters; older files use
    # rope_theta and rope_scaling at the top level.
    rope = dict(config.get('rope_parameters') or {})
    scaling = config.get('rope_scaling') or {}
    rope_type = rope.get('rope_type', scaling.get('rope_type', scaling.get('type', 'default')))
    if rope_type != 'default':
        unsupported.append(f'RoPE type {rope_type!r} (expected \'default\', no scaling)')
    if unsupported:
        raise ValueError(f'{path}: this Llama config is not supported by CausalDecoderTower: '
                         + '; '.join(unsupported))
    return dict(vocab_size=config['vocab_size'], dim=config['hidden_size'],
                depth=config['num_hidden_layers'], num_heads=heads,
                num_kv_heads=config.get('num_key_value_heads') or heads,
                ffn_dim=config['intermediate_size'],
                max_len=config.get('max_position_embeddings', 2048),
                tie_embeddings=bool(config.get('tie_word_embeddings', False)),
                rope_theta=float(rope.get('rope_theta', config.get('rope_theta', 10000.0))),
                norm_eps=float(config.get('rms_norm_eps', 1e-6)))


def _read_hf_safetensors(folder: str) -> Tuple[str, Dict[str, Tensor]]:
    """The weights of a transformers folder: ``model.safetensors`` or the
    shards listed in ``model.safetensors.index.json``. Returns
    ``(file named in errors, state dict)``."""
    from safetensors.torch import load_file
    single = osp.join(folder, 'model.safetensors')
    index = osp.join(folder, 'model.safetensors.index.json')
    if osp.isfile(single):
        return single, load_file(single)
    if osp.isfile(index):
        with open(index) as f:
            weight_map = json.load(f).get('weight_map')
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f'{index}: no "weight_map" (parameter name -> shard file)')
        state_dict = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = osp.join(folder, shard)
            if not osp.isfile(shard_path):
                raise FileNotFoundError(f'{index} lists the shard {shard}, which is missing '
                                        f'from {folder}')
            state_dict.update(load_file(shard_path))
        return index, state_dict
    raise FileNotFoundError(f'{folder}: neither model.safetensors nor '
                            'model.safetensors.index.json (a transformers save_pretrained folder)')


def hf_llama_state_dict(state_dict: Dict[str, Tensor], tie_embeddings: bool,
                        path: str) -> Dict[str, Tensor]:
    """Rename a ``LlamaForCausalLM`` state dict to :class:`CausalDecoderTower`
    keys. A tied model's ``lm_head.weight`` (if saved) is the embedding and
    is dropped; RoPE ``inv_freq`` buffers are recomputed, not loaded."""
    converted = {}
    for key, value in state_dict.items():
        if key.endswith('rotary_emb.inv_freq') or (tie_embeddings and key == 'lm_head.weight'):
            continue
        for pattern, new in _HF_LLAMA_KEYS:
            if pattern.match(key):
                converted[pattern.sub(new, key)] = value
                break
        else:
            raise KeyError(f'{path}: {key!r} is not a LlamaForCausalLM parameter')
    return converted


@MODELS.register_module('HFLlamaTower')
def hf_llama_tower(folder: str, max_len: Optional[int] = None, **kwargs) -> CausalDecoderTower:
    """A :class:`CausalDecoderTower` with the architecture and weights of a
    Hugging Face Llama-family checkpoint folder (``config.json`` +
    ``model.safetensors``, or shards with ``model.safetensors.index.json``),
    e.g. a decoder-only LM as a Zipper tower. Read directly (no
    ``transformers`` model is built), so the tower keeps the per-block
    interface the fusion needs.

    Args:
        folder: The ``save_pretrained`` folder.
        max_len: RoPE range (default: ``max_position_embeddings``).
        **kwargs: Other :class:`CausalDecoderTower` options (``frozen``,
            ``lora``, ...).
    """
    config_path = osp.join(folder, 'config.json')
    if not osp.isfile(config_path):
        raise FileNotFoundError(f'{folder}: no config.json (expected a transformers '
                                'save_pretrained folder of a Llama model)')
    with open(config_path) as f:
        arch = _hf_llama_arch(json.load(f), config_path)
    if max_len is not None:
        arch['max_len'] = max_len
    return CausalDecoderTower(**arch, hf_checkpoint=folder, **kwargs)
