# Tiny decoder-only multimodal transformer (the mmMamba teacher): 96x96
# images as 6x6 = 36 patch tokens, then the caption's word tokens, in one
# causal sequence through 6 Llama-style blocks (width 128, 4 query heads,
# 2 key/value heads, RoPE). Students override `mixer`/`attention_layers`.
# Every token of the generated SynthShapes captions (a test checks the generator's
# captions against it).
caption_vocab = [
    'a', 'and', 'on', 'with', 'background', 'shape', 'shapes', ',', '.', ':',
    'one', 'two', 'three', 'four', 'small', 'large', 'plain', 'striped', 'dotted',
    'red', 'green', 'blue', 'yellow', 'purple', 'orange',
    'circle', 'square', 'triangle', 'star', 'cross',
]

teacher_model = dict(
    type='MultimodalCausalLM',
    tokenizer=dict(type='WordTokenizer', vocab=caption_vocab),
    img_size=96,
    patch_size=16,
    dim=128,
    depth=6,
    num_heads=4,
    num_kv_heads=2,
    max_len=128,
    max_new_tokens=32,
    data_preprocessor=dict(
        type='MultiModalDataPreprocessor',
        img=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                 std=[58.395, 57.12, 57.375], bgr_to_rgb=True)))
model = teacher_model
