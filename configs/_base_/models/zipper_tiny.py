# Tiny Zipper towers for SynthSpeech on CPU: a character-level text tower and
# a speech-unit tower (64 k-means units of log-mel frames, fitted by
# tools/misc/fit_speech_units.py), both 4 Llama-style blocks.
units_file = 'work_dirs/speech_units/synth_speech_units64.pth'
num_units = 64
text_tower = dict(type='CausalDecoderTower', vocab_size=32,  # 4 specials + a-z, space, '
                  dim=128, depth=4, num_heads=4, ffn_dim=352, max_len=256)
speech_tower = dict(type='CausalDecoderTower', vocab_size=num_units + 3,  # + <pad> <s> </s>
                    dim=128, depth=4, num_heads=4, ffn_dim=352, max_len=512)
unit_tokenizer = dict(type='SpeechUnitTokenizer', num_units=num_units, checkpoint=units_file)
data_preprocessor = dict(type='MultiModalDataPreprocessor',
                         audio=dict(type='AudioDataPreprocessor'))
