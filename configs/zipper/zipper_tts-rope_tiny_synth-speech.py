# Zipper TTS with position-aware cross-attention and the text tower frozen
# (the ASR recipe that works, zipper_asr-rope_frozen-text_tiny_synth-speech.py,
# in the other direction): speech units (queries) and characters (keys) are
# rotated with RoPE at positions i / 1.65 and j, so the unit being spoken
# finds the characters a monotonic alignment puts it at; only the speech
# tower and the cross-attention train.
_base_ = ['./zipper_tts_tiny_synth-speech.py']
model = dict(decoder=dict(
    towers=dict(text=dict(frozen=True)),
    links=[dict(query='speech', context='text', every=2, num_heads=4, position_rate=1 / 1.65)]))
