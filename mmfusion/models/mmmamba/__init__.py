"""mmMamba (Liao et al., 2025): a decoder-only multimodal transformer and its
distillation into Mamba-2 layers (linear or hybrid students)."""
from .mamba2_mixer import Mamba2Mixer
from .mamba_distiller import MambaDistiller
from .multimodal_causal_lm import MultimodalCausalLM, PatchEmbed
from .official import convert_official_lm, infer_mamba_heads, split_internlm2_wqkv
from .ssd import mamba_ssm_available, segment_sum, ssd_chunked, ssd_kernel, ssd_recurrent, ssd_step

__all__ = ['MultimodalCausalLM', 'PatchEmbed', 'MambaDistiller', 'Mamba2Mixer', 'segment_sum',
           'ssd_chunked', 'ssd_recurrent', 'ssd_step', 'ssd_kernel', 'mamba_ssm_available',
           'convert_official_lm', 'infer_mamba_heads', 'split_internlm2_wqkv']
