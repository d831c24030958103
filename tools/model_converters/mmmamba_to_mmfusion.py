"""Convert a released mmMamba checkpoint (hustvl/mmMamba-linear or -hybrid,
written by the official ``convert_weight.py``; or a distillation-time state
dict with unfused ``q/k/v_proj``, ``in_proj``, ``g_proj``, ``g_norm``) to an
mmfusion ``MultimodalCausalLM`` student checkpoint.

    python tools/model_converters/mmmamba_to_mmfusion.py SRC DST

SRC: a ``save_pretrained`` folder (``model.safetensors`` or sharded with
``model.safetensors.index.json``), a ``.safetensors`` file or a torch
checkpoint. The language model (``language_model.*`` when the file holds the
whole chat model) is converted (``mmfusion/models/mmmamba/official.py``):
each Mamba-2 layer's fused ``wvkqgdt`` is split into the mixer's ``v_proj``,
``k_proj``, ``q_proj``, ``g_proj``, ``dt_proj``; ``A_log_bias`` -> ``A_log``;
``g_norm_swish_gate`` -> ``g_norm``; ``conv1d``'s channels are reordered from
``[v, k, q]`` to ``[q, k, v]``; a hybrid's softmax layers' ``wqkv`` is split
by InternLM2's grouping. The head counts are read from the first Mamba-2
layer. HoVLE's ``embedding_model`` (its image and text embedding layers) has
no counterpart in mmfusion's patch embedding and is dropped: DST loads with
``MultimodalCausalLM.load_official``'s rule (every key but ``patch_embed.*``).
"""
import argparse
import io
import os.path as osp
import sys
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.models.common.causal_lm import _read_hf_safetensors  # noqa: E402
from mmfusion.models.mmmamba.official import convert_official_lm, infer_mamba_heads  # noqa: E402
from mmfusion.utils.checkpoint import AtomicLocalBackend, load_state_dict_file, unwrap_state_dict  # noqa: E402
from mmfusion.utils.key_mapping import ConversionReport  # noqa: E402

PREFIX = 'language_model.'


def convert_official_mmmamba(checkpoint: object, source: str = 'mmMamba checkpoint'
                             ) -> Tuple[Dict[str, Tensor], ConversionReport]:
    """A released mmMamba checkpoint (the loaded file or its state dict) ->
    (``MultimodalCausalLM`` state dict without ``patch_embed.*``, report)."""
    state_dict = unwrap_state_dict(checkpoint, source)
    prefix = PREFIX if any(k.startswith(PREFIX) for k in state_dict) else None
    heads, kv_heads = infer_mamba_heads(state_dict, source)
    return convert_official_lm(state_dict, heads, kv_heads, prefix, source)


def read_source(path: str) -> Dict[str, Tensor]:
    """The weights of a folder, a ``.safetensors`` file or a torch file."""
    if osp.isdir(path):
        return _read_hf_safetensors(path)[1]
    return load_state_dict_file(path)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='released mmMamba folder or weights file')
    parser.add_argument('dst', help='mmfusion checkpoint to write')
    args = parser.parse_args(argv)
    state, report = convert_official_mmmamba(read_source(args.src), args.src)
    print(report.summary())
    buffer = io.BytesIO()
    torch.save(dict(state_dict=state, meta=dict(converted_from=osp.basename(args.src))), buffer)
    AtomicLocalBackend().put(buffer.getvalue(), args.dst)
    print(f'wrote {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
