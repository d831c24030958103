# The Zipper paper's baseline for ASR: one decoder (the pretrained text tower)
# whose vocabulary is expanded with the 64 speech units; each utterance is
# "units <s> characters </s>", loss on the characters. Same data, schedule
# and evaluation as zipper_asr_tiny_1xb16-1500it_synth-speech.py.
_base_ = ['./zipper_asr_tiny_1xb16-1500it_synth-speech.py']
model = dict(
    _delete_=True,
    type='VocabExpansionASR',
    tower=dict(type='CausalDecoderTower', vocab_size=32 + 64, dim=128, depth=4, num_heads=4,
               ffn_dim=352, max_len=768),
    text_checkpoint={{_base_.text_lm}},
    unit_tokenizer={{_base_.model.unit_tokenizer}},
    max_new_tokens=120,
    data_preprocessor={{_base_.model.data_preprocessor}})
