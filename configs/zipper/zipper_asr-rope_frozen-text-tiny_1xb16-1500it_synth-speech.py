# The paper's claim (a): ASR with the pretrained text tower frozen, so the
# fused model keeps the text LM exactly; only the speech tower and the
# cross-attention train. Otherwise as zipper_asr-rope_tiny_1xb16-1500it_synth-speech.py.
_base_ = ['./zipper_asr-rope_tiny_1xb16-1500it_synth-speech.py']
model = dict(decoder=dict(towers=dict(text=dict(frozen=True))))
