# SynthSpeech (tools/dataset_converters/generate_synth_speech.py): espeak-ng
# utterances of SynthShapes sentences; val is spoken by held-out voices.
data_root = 'data/synth_speech'
speech_pipeline = [
    dict(type='LoadAudioFromFile', sample_rate=16000),
    dict(type='PackFusionInputs'),
]
text_pipeline = [dict(type='PackFusionInputs')]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SpeechTextDataset', data_root=data_root, ann_file='train.jsonl',
                 pipeline=speech_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SpeechTextDataset', data_root=data_root, ann_file='val.jsonl',
                 pipeline=speech_pipeline, test_mode=True))
test_dataloader = val_dataloader
