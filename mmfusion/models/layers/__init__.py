from .llama import (GroupedQueryAttention, LlamaBlock, RMSNorm, RotaryEmbedding, SwiGLU,
                    rotate_at)

__all__ = ['RMSNorm', 'RotaryEmbedding', 'SwiGLU', 'GroupedQueryAttention', 'LlamaBlock', 'rotate_at']
