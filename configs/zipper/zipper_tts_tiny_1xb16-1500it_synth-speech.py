# Zipper TTS as the paper describes it: the pretrained speech tower reads the
# pretrained text tower (its embeddings through the new input projection)
# through gated cross-attention after every 2nd block and learns to continue
# <s> with the utterance's speech units. Evaluated by unit error rate against
# the units of the real (held-out voice) audio; `demo/audio_demo.py tts`
# turns predicted units into audio (mel lookup + Griffin-Lim).
_base_ = ['./zipper_asr_tiny_1xb16-1500it_synth-speech.py']
model = dict(output='speech', context='text', max_new_tokens=250,
             decoder=dict(links=[dict(query='speech', context='text', every=2, num_heads=4)]))
val_evaluator = dict(_delete_=True, type='UnitErrorRateMetric')
test_evaluator = val_evaluator
