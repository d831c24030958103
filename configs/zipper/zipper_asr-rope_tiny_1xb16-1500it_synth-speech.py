# Zipper ASR with position-aware cross-attention: queries (characters) and
# keys (speech units) are rotated with RoPE at positions i * 1.65 and j, the
# training set's mean number of speech units per character (23.7 units/s),
# so each character can find the part of the utterance a monotonic
# alignment would put it in. The paper's cross-attention has no positions
# (zipper_asr_tiny_1xb16-1500it_synth-speech.py). Also not the paper's (the recipe these
# variants were developed with): an MLP between the towers' widths in each
# link and no input projection of the speech embeddings.
_base_ = ['./zipper_asr_tiny_1xb16-1500it_synth-speech.py']
model = dict(decoder=dict(
    input_proj=[],
    links=[dict(query='text', context='speech', every=2, num_heads=4, position_rate=1.65,
                context_proj='mlp')]))
