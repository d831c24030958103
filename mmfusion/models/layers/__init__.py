from .llama import (GroupedQueryAttention, LlamaBlock, RMSNorm, RotaryEmbedding, SwiGLU,
                    cached_length, rotate_at)

__all__ = ['RMSNorm', 'RotaryEmbedding', 'SwiGLU', 'GroupedQueryAttention', 'LlamaBlock',
           'rotate_at', 'cached_length']
