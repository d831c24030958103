"""SynthSpeech: espeak-ng speech with a JSONL manifest, held-out voices."""
import json
import os.path as osp

import numpy as np
import soundfile

from mmfusion.datasets.synthshapes_meta import COLOURS, SHAPES, SIZES, STUFF_CLASSES
from mmfusion.datasets.transforms import LoadAudioFromFile

from tools.dataset_converters.generate_synth_speech import HELD_OUT_VARIANTS, HELD_OUT_VOICES, main

WORDS = (set(COLOURS) | set(SHAPES) | {s + 's' for s in SHAPES} | set(SIZES)
         | {w for s in STUFF_CLASSES for w in s.split()}
         | {'the', 'a', 'is', 'on', 'and', 'left', 'right', 'of', 'above', 'below', 'next',
            'to', 'two', 'three', 'four'})


def _manifest(root, split):
    with open(osp.join(root, f'{split}.jsonl')) as f:
        return [json.loads(line) for line in f]


def test_wavs_manifest_and_held_out_voices(tmp_path):
    out, meta = main(['--out', str(tmp_path), '--num-train', '12', '--num-val', '4',
                      '--num-text', '30'])
    train, val = _manifest(out, 'train'), _manifest(out, 'val')
    assert len(train) == 12 and len(val) == 4
    loader = LoadAudioFromFile(sample_rate=16000)
    for item in train + val:
        info = soundfile.info(osp.join(out, item['audio']))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, 'PCM_16')
        assert abs(info.duration - item['duration']) < 1e-3
        # A spoken sentence: between half a second and 10 s, not silence.
        assert 0.5 < item['duration'] < 10
        wave = loader(dict(audio_path=osp.join(out, item['audio'])))['audio']
        assert np.abs(wave).max() > 0.05
        assert set(item['text'].split()) <= WORDS, item['text']
        assert 130 <= item['speed'] <= 200 and 25 <= item['pitch'] <= 75
    # Validation voices are unseen in training: other regional voices, other variants.
    train_voices = {item['voice'] for item in train}
    for item in val:
        base, variant = item['voice'].split('+')
        assert base in HELD_OUT_VOICES and variant in HELD_OUT_VARIANTS
        assert all(base != v.split('+')[0] and variant != v.split('+')[1] for v in train_voices)
    assert set(meta['splits']['train']['voices']).isdisjoint(meta['splits']['val']['voices'])
    with open(osp.join(out, 'text_corpus.txt')) as f:
        lines = f.read().splitlines()
    assert len(lines) == 30 and all(set(line.split()) <= WORDS for line in lines)


def test_longer_sentences_take_longer_to_say(tmp_path):
    out, _ = main(['--out', str(tmp_path), '--num-train', '30', '--num-val', '1',
                   '--num-text', '1'])
    train = _manifest(out, 'train')
    words = np.array([len(item['text'].split()) for item in train])
    seconds = np.array([item['duration'] * item['speed'] for item in train])  # speed-normalised
    assert np.corrcoef(words, seconds)[0, 1] > 0.8
