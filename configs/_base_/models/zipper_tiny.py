# Tiny Zipper for SynthSpeech on CPU: a character-level text tower and a
# speech-unit tower (64 k-means units of log-mel frames, fitted by
# tools/misc/fit_speech_units.py), both 4 Llama-style blocks of width 128.
# As written: ASR (the text tower reads the speech tower after every 2nd
# block). Pretraining configs drop the other tower (towers=dict(name=None)).
units_file = 'work_dirs/speech_units/synth_speech_units64.pth'
num_units = 64
# The alternative units: k-means over the first transformer layer of a tiny
# HuBERT at random init (no pretrained weights can be downloaded here), fitted
# by `tools/misc/fit_speech_units.py --features ssl`, which reads its encoder
# from here.
hubert_unit_tokenizer = dict(
    type='SSLSpeechUnitTokenizer', num_units=num_units, layer=1,
    checkpoint='work_dirs/speech_units/synth_speech_hubert-tiny-l1_units64.pth',
    encoder=dict(type='Wav2Vec2Encoder', arch=dict(
        extractor_mode='group_norm',
        extractor_conv_layer_config=[[128, 10, 5]] + [[128, 3, 2]] * 4 + [[128, 2, 2]] * 2,
        extractor_conv_bias=False, encoder_embed_dim=128, encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=32, encoder_pos_conv_groups=8, encoder_num_layers=2,
        encoder_num_heads=4, encoder_attention_dropout=0.0, encoder_ff_interm_features=256,
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=False,
        encoder_layer_drop=0.0)))
model = dict(
    type='Zipper',
    output='text',
    context='speech',
    decoder=dict(
        type='ZipperDecoder',
        towers=dict(
            text=dict(type='CausalDecoderTower', vocab_size=32,  # 4 specials + a-z, space, '
                      dim=128, depth=4, num_heads=4, ffn_dim=352, max_len=256),
            speech=dict(type='CausalDecoderTower', vocab_size=num_units + 3,  # + <pad> <s> </s>
                        dim=128, depth=4, num_heads=4, ffn_dim=352, max_len=512)),
        links=[dict(query='text', context='speech', every=2, num_heads=4)]),
    text_tokenizer=dict(type='CharTokenizer'),
    unit_tokenizer=dict(type='SpeechUnitTokenizer', num_units=num_units, checkpoint=units_file),
    max_new_tokens=120,
    data_preprocessor=dict(type='MultiModalDataPreprocessor',
                           audio=dict(type='AudioDataPreprocessor')))
