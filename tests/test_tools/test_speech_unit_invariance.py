"""tools/analysis_tools/speech_unit_invariance.py on hand-made manifests
whose unit error rates are known."""
import json

import pytest

from tools.analysis_tools.speech_unit_invariance import main as invariance
from tools.dataset_converters.generate_synth_speech import main as generate
from tools.misc.fit_speech_units import read_manifest

pytestmark = pytest.mark.usefixtures('one_thread')


def _levenshtein(a, b) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def _write(path, items):
    path.write_text(''.join(json.dumps(item) + '\n' for item in items))
    return str(path)


def test_same_recording_scores_zero_and_other_texts_their_edit_distance(fitted_units,
                                                                        tmp_path):
    from mmfusion.models.tokenizers import SpeechUnitTokenizer
    root, _ = generate(['--out', str(tmp_path / 'speech'), '--num-train', '3', '--num-val', '1',
                        '--num-text', '2'])
    items = read_manifest(f'{root}/train.jsonl')
    train = [dict(audio=it['audio'], text=t) for it, t in zip(items, ['x', 'y', 'z'])]
    # Held-out "recordings" of x and y: the training files themselves.
    val = [dict(audio=train[0]['audio'], text='x'), dict(audio=train[1]['audio'], text='y'),
           dict(audio=train[2]['audio'], text='unseen')]
    config = tmp_path / 'units_cfg.py'
    config.write_text(f'model = dict(unit_tokenizer=dict(type="SpeechUnitTokenizer", '
                      f'num_units=64, checkpoint={fitted_units!r}))\n')
    args = [str(config), '--train', _write(tmp_path / 'train.jsonl', train),
            '--val', _write(tmp_path / 'val.jsonl', val)]
    report, = invariance(args)
    assert report['pairs'] == 2 and report['uer_same_text'] == 0.0
    # Other texts: x's recording against y's, y's against x's (corpus rate).
    tokenizer = SpeechUnitTokenizer(num_units=64, checkpoint=fitted_units)
    import soundfile
    units = [tokenizer.quantize(soundfile.read(it['audio'], dtype='float32')[0]).tolist()
             for it in train[:2]]
    edits = _levenshtein(units[0], units[1]) + _levenshtein(units[1], units[0])
    expected = 100 * edits / (len(units[0]) + len(units[1]))
    assert report['uer_other_text'] == pytest.approx(round(expected, 1))
    with pytest.raises(ValueError, match='1 held-out utterances share a text'):
        invariance([str(config), '--train', args[2], '--val',
                    _write(tmp_path / 'one.jsonl', val[:1])])
    empty = tmp_path / 'empty_cfg.py'
    empty.write_text('model = dict(type="Zipper")\n')
    with pytest.raises(KeyError, match='empty_cfg.py: model.unit_tokenizer is not set'):
        invariance([str(empty), '--train', args[2], '--val', args[4]])
