from .llama import (
                    GroupedQueryAttention,
                    LlamaBlock,
                    RMSNorm,
                    RotaryEmbedding,
                    SwiGLU,
                    cached_length,
                    rope_inv_freq,
                    rotate_at,
)

__all__ = ['RMSNorm', 'RotaryEmbedding', 'SwiGLU', 'GroupedQueryAttention', 'LlamaBlock',
           'rotate_at', 'rope_inv_freq', 'cached_length']
