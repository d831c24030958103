# Zipper TTS with position-aware cross-attention and the text tower frozen
# (the ASR recipe, zipper_asr-rope_frozen-text-tiny_1xb16-1500it_synth-speech.py, in the
# other direction): speech units (queries) and characters (keys) are rotated
# with RoPE at positions i / 1.65 and j, so the unit being spoken finds the
# characters a monotonic alignment puts it at. Only the speech tower (at 0.3x
# the learning rate, it is pretrained) and the new cross-attention train. As
# the ASR recipe: MLP link projections, no input projection (not the paper's).
_base_ = ['./zipper_tts_tiny_1xb16-1500it_synth-speech.py']
model = dict(decoder=dict(
    towers=dict(text=dict(frozen=True)),
    input_proj=[],
    links=[dict(query='speech', context='text', every=2, num_heads=4, position_rate=1 / 1.65,
                context_proj='mlp')]))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'towers': dict(lr_mult=0.3)}))
