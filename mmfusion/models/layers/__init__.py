from .llama import GroupedQueryAttention, LlamaBlock, RMSNorm, RotaryEmbedding, SwiGLU

__all__ = ['RMSNorm', 'RotaryEmbedding', 'SwiGLU', 'GroupedQueryAttention', 'LlamaBlock']
