"""ASRInferencer, TTSInferencer, MambaCaptionInferencer and
PointCloudZeroShotInferencer on random-weight tiny models built from the
repository's configs (found by glob, not by file name), and on checkpoints
trained here for a few steps to one example (transcript / units / caption)
that random weights do not give."""
import glob
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import soundfile
import torch
from mmengine.config import Config

from mmfusion.apis import (
    ASRInferencer,
    MambaCaptionInferencer,
    PointCloudZeroShotInferencer,
    TTSInferencer,
    init_model,
)
from mmfusion.utils.config_weights import drop_weight_files

from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures('one_thread')
RATE = 16000


def _config(folder: str, patterns, accept) -> str:
    """The first config of ``configs/{folder}`` matching a glob pattern whose
    model passes ``accept`` (file names are being renamed; the model is what counts)."""
    for pattern in patterns:
        for path in sorted(glob.glob(osp.join(REPO, 'configs', folder, pattern))):
            if accept(Config.fromfile(path).model):
                return path
    raise FileNotFoundError(f'no config in configs/{folder} for {patterns}')


def _zipper_config(output: str, context: str) -> str:
    pattern = '*asr*.py' if output == 'text' else '*tts*.py'
    return _config('zipper', [pattern, '*.py'], lambda m: m.get('type') == 'Zipper' and (
        m.get('output'), m.get('context')) == (output, context)
        and m.unit_tokenizer.type == 'SpeechUnitTokenizer')  # the fixture's log-mel units


def _speech(seconds: float = 0.5, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Noise in segments of different loudness: several different units."""
    g = np.random.default_rng(seed)
    n = int(seconds * rate) // 5
    return np.concatenate([g.standard_normal(n) * a for a in (0.02, 0.3, 0.08, 0.9, 0.2)]
                          ).astype(np.float32) * 0.5


def _read_json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def zipper(fitted_units):
    opts = {'model.unit_tokenizer.checkpoint': fitted_units, 'model.max_new_tokens': 12}
    torch.manual_seed(0)
    asr = init_model(_zipper_config('text', 'speech'), None, cfg_options=opts)
    torch.manual_seed(0)
    tts = init_model(_zipper_config('speech', 'text'), None, cfg_options=opts)
    return dict(asr=asr, tts=tts, opts=opts)


# -- ASR ---------------------------------------------------------------------------------
def test_asr_files_folders_tuples_and_arrays_agree_with_the_model(zipper, tmp_path):
    model = zipper['asr']
    inf = ASRInferencer(model, show_progress=False)
    wave16, wave48 = _speech(), _speech(rate=48000, seed=1)

    def reference(wave):
        return model.predict(dict(audio=torch.from_numpy(wave)[None],
                                  audio_lengths=torch.tensor([len(wave)])))[0].pred_text

    import torchaudio.functional as AF
    ref16 = reference(wave16)
    ref48 = reference(AF.resample(torch.from_numpy(wave48), 48000, RATE).numpy())
    folder = tmp_path / 'speech'
    folder.mkdir()
    soundfile.write(folder / 'a.wav', wave16, RATE, subtype='FLOAT')
    soundfile.write(folder / 'b.flac', np.stack([wave48, wave48], 1) * 0.9, 48000)
    (folder / 'notes.txt').write_text('not audio')
    out = inf(str(folder), out_dir=str(tmp_path / 'out'))
    preds = out['predictions']  # a.wav, b.flac; not the .txt
    assert len(preds) == 2 and preds[0]['text'] == ref16
    assert all(isinstance(p['text'], str) for p in preds)
    assert preds[0]['duration_s'] == pytest.approx(len(wave16) / RATE)
    assert preds[1]['duration_s'] == pytest.approx(len(wave48) / 48000)
    for name, pred in zip('ab', preds):
        assert _read_json(tmp_path / 'out' / 'preds' / f'{name}.json') == pred
    # The spectrogram: 4 px per 20 ms frame (512-point FFT, 320-sample hop).
    png = mmcv.imread(str(tmp_path / 'out' / 'vis' / 'a.png'))
    assert png.shape[1] == 4 * ((len(wave16) - 512) // 320 + 1) and png.shape[0] >= 80
    assert np.array_equal(png[..., ::-1], out['visualization'][0])

    inputs = [(wave48, 48000), wave16, torch.from_numpy(wave16), str(folder / 'a.wav'),
              (wave16.tolist(), RATE)]
    one = [p['text'] for p in inf(inputs)['predictions']]
    assert one == [ref48, ref16, ref16, ref16, ref16]
    assert [p['text'] for p in inf(inputs, batch_size=2)['predictions']] == one
    assert inf((wave48, 48000))['predictions'][0]['text'] == ref48  # one tuple, one input
    # Gradio's microphone: (rate, int16 samples).
    pcm = np.round(wave16 * 32767).astype(np.int16)
    ref_pcm = reference(pcm / np.float32(32768))
    assert inf((RATE, pcm))['predictions'][0]['text'] == ref_pcm
    assert inf(wave16, return_vis=False)['visualization'] is None


def test_asr_errors_name_the_input(zipper, tmp_path):
    inf = ASRInferencer(zipper['asr'], show_progress=False, resample=False)
    with pytest.raises(ValueError, match='48000 Hz.*16000 Hz'):
        inf((_speech(rate=48000), 48000))
    path = tmp_path / 'rate48k.wav'
    soundfile.write(path, _speech(rate=48000), 48000)
    with pytest.raises(ValueError, match='rate48k.wav'):
        inf(str(path))
    with pytest.raises(FileNotFoundError, match='missing.wav'):
        inf([str(path), str(tmp_path / 'missing.wav')])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='holds no'):
        inf(str(tmp_path / 'empty'))
    for bad, match in [(np.zeros(0, np.float32), 'no samples'),
                       (np.full(800, np.nan, np.float32), 'NaN'),
                       (np.zeros((3, 3, 3), np.float32), 'mono'),
                       ((_speech(), 0), 'positive')]:
        with pytest.raises(ValueError, match=match):
            inf(bad)
    with pytest.raises(TypeError, match='audio file path'):
        inf([dict(audio=1)])
    with pytest.raises(ValueError, match="output='text', context='speech'"):
        ASRInferencer(zipper['tts'])


def test_asr_on_a_trained_checkpoint_and_its_config(zipper, tmp_path):
    """A config + checkpoint (the demo's path): the ASR trained to transcribe one
    utterance as 'red' does so from a file; random weights do not."""
    config = _zipper_config('text', 'speech')
    torch.manual_seed(0)
    model = init_model(config, None, cfg_options=zipper['opts'])
    wave = torch.from_numpy(_speech())
    before = ASRInferencer(model, show_progress=False)(wave.numpy())['predictions'][0]['text']
    inputs = dict(audio=wave[None], audio_lengths=torch.tensor([len(wave)]), text=['red'])
    model.requires_grad_(True)
    model.unit_tokenizer.requires_grad_(False)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for _ in range(15):
        loss = sum(v for k, v in model.loss(inputs).items() if k.startswith('loss'))
        optim.zero_grad()
        loss.backward()
        optim.step()
    ckpt = str(tmp_path / 'asr.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    path = str(tmp_path / 'red.wav')
    soundfile.write(path, wave.numpy(), RATE, subtype='FLOAT')
    inf = ASRInferencer(config, ckpt, cfg_options=zipper['opts'], show_progress=False)
    assert before != 'red'
    assert inf(path)['predictions'][0]['text'] == 'red'


# -- TTS ---------------------------------------------------------------------------------
def _wave_length(units, frames_per_unit: float, hop: int = 320) -> int:
    """Samples Griffin-Lim gives (centred STFT): hop * (frames - 1), where unit
    k covers frames [round(k r), round((k + 1) r)), at least one."""
    edges = np.round(np.arange(len(units) + 1) * frames_per_unit).astype(int)
    return hop * (int(np.maximum(np.diff(edges), 1).sum()) - 1)


def test_tts_texts_files_and_folders_give_wavs_of_the_units_length(zipper, tmp_path):
    model = zipper['tts']
    inf = TTSInferencer(model, show_progress=False)
    texts = ['the red circle', 'two blue squares on a dotted background', 'a star']
    folder = tmp_path / 'texts'
    folder.mkdir()
    for i, text in enumerate(texts):
        (folder / f'line{i}.txt').write_text(text + '\n')
    refs = [model.predict(dict(text=[t]))[0].pred_units.tolist() for t in texts]
    out = inf(str(folder), out_dir=str(tmp_path / 'out'), frames_per_unit=1.5)
    for i, (text, ref, pred, wave) in enumerate(zip(texts, refs, out['predictions'],
                                                    out['visualization'])):
        assert pred['units'] == ref and pred['num_units'] == len(ref) and ref
        assert pred['text'] == text and pred['sample_rate'] == RATE
        assert _read_json(tmp_path / 'out' / 'preds' / f'line{i}.json') == pred
        path = str(tmp_path / 'out' / 'vis' / f'line{i}.wav')
        read, rate = soundfile.read(path, dtype='float32')
        assert rate == RATE and soundfile.info(path).subtype == 'PCM_16'
        assert len(read) == len(wave) == _wave_length(ref, 1.5)
        assert np.abs(read - wave).max() <= 1.5 / 32768 and np.abs(wave).max() > 0.1
    # Texts, a file, batches.
    mixed = [texts[0], str(folder / 'line1.txt'), texts[2]]
    one = inf(mixed, return_vis=False)
    assert one['visualization'] is None and [p['units'] for p in one['predictions']] == refs
    two = inf(mixed, batch_size=2)
    assert [p['units'] for p in two['predictions']] == refs
    assert len(two['visualization'][0]) == _wave_length(refs[0], 2.0)  # the default
    inf(texts[0], out_dir=str(tmp_path / 'named'))
    assert osp.isfile(tmp_path / 'named' / 'vis' / '00000.wav')


def test_tts_errors_and_no_units(zipper, tmp_path):
    model = zipper['tts']
    inf = TTSInferencer(model, show_progress=False)
    with pytest.raises(ValueError, match='nothing to speak'):
        inf(['a star', '   '])
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        inf(str(tmp_path / 'nope.txt'))
    with pytest.raises(ValueError, match='frames_per_unit'):
        inf('a star', frames_per_unit=0)
    with pytest.raises(TypeError, match='text'):
        inf([3])
    with pytest.raises(ValueError, match="output='speech', context='text'"):
        TTSInferencer(zipper['asr'])
    limit, model.max_new_tokens = model.max_new_tokens, 0
    try:
        with pytest.warns(UserWarning, match='no speech units'):
            out = inf('a star', out_dir=str(tmp_path / 'out'))
    finally:
        model.max_new_tokens = limit
    assert out['predictions'][0]['units'] == [] and out['visualization'] == [None]
    assert not osp.exists(tmp_path / 'out' / 'vis' / '00000.wav')


def test_tts_on_a_trained_checkpoint_and_its_config(zipper, tmp_path):
    """The TTS trained to speak 'red' as one utterance's units speaks exactly
    those units (random weights do not) and writes their audio."""
    config = _zipper_config('speech', 'text')
    opts = dict(zipper['opts'], **{'model.max_new_tokens': 40})
    torch.manual_seed(0)
    model = init_model(config, None, cfg_options=opts)
    wave = torch.from_numpy(_speech())
    target = model.unit_tokenizer.quantize(wave).tolist()
    before = TTSInferencer(model, show_progress=False)('red', return_vis=False)
    inputs = dict(audio=wave[None], audio_lengths=torch.tensor([len(wave)]), text=['red'])
    model.requires_grad_(True)
    model.unit_tokenizer.requires_grad_(False)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for _ in range(50):
        loss = sum(v for k, v in model.loss(inputs).items() if k.startswith('loss'))
        optim.zero_grad()
        loss.backward()
        optim.step()
    ckpt = str(tmp_path / 'tts.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    inf = TTSInferencer(config, ckpt, cfg_options=opts, show_progress=False)
    out = inf('red', out_dir=str(tmp_path / 'out'))
    assert len(target) > 5 and before['predictions'][0]['units'] != target
    assert out['predictions'][0]['units'] == target
    read, rate = soundfile.read(str(tmp_path / 'out' / 'vis' / '00000.wav'))
    assert rate == RATE and len(read) == _wave_length(target, 2.0)


# -- mmMamba captions ------------------------------------------------------------------------
def _mamba_config(kind: str) -> str:
    def accept(model):
        if kind == 'teacher':
            return model.get('type') == 'MultimodalCausalLM'
        student = model.get('student') or {}
        hybrid = bool(student.get('attention_layers') or student.get('attention_every'))
        return model.get('type') == 'MambaDistiller' and model.get('stage') == 3 and \
            hybrid == (kind == 'hybrid')
    return _config('mmmamba', ['*teacher*.py' if kind == 'teacher' else f'*{kind}_*.py',
                               '*.py'], accept)


@pytest.mark.parametrize('kind', ['teacher', 'linear', 'hybrid'])
def test_mamba_captions_agree_with_the_model_and_batches(kind, tmp_path):
    torch.manual_seed(0)
    inf = MambaCaptionInferencer(_mamba_config(kind), weights=False, show_progress=False)
    assert inf.architecture == {'teacher': 'attention'}.get(kind, kind)
    size = inf.captioner.patch_embed.img_size
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    tall = rng.integers(0, 255, (2 * size + 5, size + 3, 3), dtype=np.uint8)
    mmcv.imwrite(tall, str(tmp_path / 'imgs' / 'tall.png'))
    mmcv.imwrite(small, str(tmp_path / 'imgs' / 'small.png'))

    def reference(bgr):
        img = torch.from_numpy(mmcv.imresize(bgr, (size, size))).permute(2, 0, 1)
        batch = inf.model.data_preprocessor(dict(inputs=dict(img=[img])), False)
        return inf.model.predict(batch['inputs'])[0].pred_caption

    refs = [reference(small), reference(tall)]
    out = inf(str(tmp_path / 'imgs'), out_dir=str(tmp_path / 'out'))  # small.png, tall.png
    assert [p['caption'] for p in out['predictions']] == refs
    assert all(isinstance(r, str) for r in refs)
    assert _read_json(tmp_path / 'out' / 'preds' / 'tall.json') == dict(caption=refs[1])
    assert mmcv.imread(str(tmp_path / 'out' / 'vis' / 'tall.png')).shape == tall.shape
    mixed = [small, str(tmp_path / 'imgs' / 'tall.png'), 'skimage:astronaut']
    one = inf(mixed, return_vis=False)['predictions']
    assert [p['caption'] for p in one[:2]] == refs
    assert inf(mixed, batch_size=2, return_vis=False)['predictions'] == one


def test_mamba_on_a_trained_checkpoint_and_errors(zipper, tmp_path):
    """The teacher trained on one picture's caption says it through the
    config + checkpoint path; a non-mmMamba model is refused."""
    config = _mamba_config('teacher')
    torch.manual_seed(0)
    model = init_model(config, None)
    size = model.patch_embed.img_size
    image = np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)
    caption = 'a large red circle on a dotted background.'
    batch = model.data_preprocessor(
        dict(inputs=dict(img=[torch.from_numpy(image).permute(2, 0, 1)])), False)
    from mmfusion.structures import FusionDataSample
    samples = [FusionDataSample(gt_caption=[caption])]
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(40):
        losses = model.loss(batch['inputs'], samples)
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        optim.zero_grad()
        loss.backward()
        optim.step()
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    path = str(tmp_path / 'shapes.png')
    mmcv.imwrite(image, path)
    inf = MambaCaptionInferencer(config, ckpt, show_progress=False)
    assert inf(path)['predictions'][0]['caption'] == caption
    random = MambaCaptionInferencer(config, weights=False, show_progress=False)
    assert random(path)['predictions'][0]['caption'] != caption
    with pytest.raises(TypeError, match='MultimodalCausalLM / MambaDistiller'):
        MambaCaptionInferencer(zipper['asr'])
    with pytest.raises(FileNotFoundError, match='nothing.png'):
        inf(str(tmp_path / 'nothing.png'))


# -- point clouds ------------------------------------------------------------------------------
TEXTS = ['cone', 'torus', 'cube', 'tall cylinder']
CUBE_OFF = ('OFF\n8 6 0\n-1 -1 -1\n1 -1 -1\n1 1 -1\n-1 1 -1\n-1 -1 1\n1 -1 1\n1 1 1\n-1 1 1\n'
            '4 0 3 2 1\n4 4 5 6 7\n4 0 1 5 4\n4 2 3 7 6\n4 1 2 6 5\n4 0 4 7 3\n')


@pytest.fixture(scope='module')
def zero_shot():
    """The tiny zero-shot recipe's model at random weights (no weight file loaded),
    on 256-point clouds."""
    config = _config('i2pmae', ['zeroshot_*.py'], lambda m: m.get('type') == 'PointCLIPAligner')
    cfg = Config.fromfile(config)
    drop_weight_files(cfg.model)
    cfg.model.data_preprocessor.points.num_points = 256
    torch.manual_seed(0)
    return PointCloudZeroShotInferencer(cfg, weights=False, show_progress=False)


def _cone(n: int = 300, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    h, a = g.uniform(0, 1, n), g.uniform(0, 2 * np.pi, n)
    return np.stack([(1 - h) * np.cos(a), (1 - h) * np.sin(a), 2 * h], 1).astype(np.float32)


def _torus(n: int = 400, seed: int = 1) -> np.ndarray:
    u, v = np.random.default_rng(seed).uniform(0, 2 * np.pi, (2, n))
    return np.stack([(1 + 0.3 * np.cos(v)) * np.cos(u), (1 + 0.3 * np.cos(v)) * np.sin(u),
                     0.3 * np.sin(v)], 1).astype(np.float32)


def test_point_ranking_is_the_models_softmax_over_exactly_the_names(zero_shot, tmp_path):
    inf, model = zero_shot, zero_shot.model

    def reference(cloud):
        batch = model.data_preprocessor(dict(inputs=dict(points=[torch.from_numpy(cloud)])),
                                        False)
        scores = model.predict(batch['inputs'], classes=TEXTS)[0].pred_score
        return dict(zip(TEXTS, scores.tolist()))

    cone, torus = _cone(), _torus()
    folder = tmp_path / 'clouds'
    folder.mkdir()
    np.save(folder / 'cone.npy', cone)
    normals = np.random.default_rng(2).standard_normal(torus.shape).astype(np.float32)
    np.savetxt(folder / 'torus.xyz', np.concatenate([torus, normals], 1), fmt='%.6f')
    (folder / 'cube.off').write_text(CUBE_OFF)
    out = inf(str(folder), texts=TEXTS, out_dir=str(tmp_path / 'out'))  # cone, cube, torus
    preds = out['predictions']
    for pred in preds:
        names = [r['label'] for r in pred['ranking']]
        scores = [r['score'] for r in pred['ranking']]
        assert sorted(names) == sorted(TEXTS) and len(names) == len(TEXTS)
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, 1e-5)
        assert (pred['label'], pred['score']) == (names[0], scores[0])
    for pred, ref in ((preds[0], reference(cone)), (preds[2], reference(torus))):
        assert {r['label']: r['score'] for r in pred['ranking']} == pytest.approx(ref, abs=1e-6)
    assert [p['num_points'] for p in preds] == [300, 256, 400]  # the mesh: 256 samples
    assert _read_json(tmp_path / 'out' / 'preds' / 'cube.json') == preds[1]
    png = mmcv.imread(str(tmp_path / 'out' / 'vis' / 'torus.png'))
    assert png.shape[1] >= 3 * png.shape[0] >= 900  # three views and the scatter
    assert np.array_equal(png[..., ::-1], out['visualization'][2])

    # Arrays (extra columns ignored), a comma-separated string, batches.
    inputs = [np.concatenate([torus, normals], 1), str(folder / 'cone.npy'), cone,
              torch.from_numpy(torus)]
    one = inf(inputs, texts=', '.join(TEXTS), return_vis=False)['predictions']
    assert one[0] == one[3] and one[1] == one[2] == dict(preds[0], num_points=300)
    from_file = {r['label']: r['score'] for r in preds[2]['ranking']}  # written to 6 decimals
    assert {r['label']: r['score'] for r in one[0]['ranking']} == pytest.approx(from_file, 1e-4)
    batched = inf(inputs, texts=TEXTS, batch_size=3, return_vis=False)['predictions']
    for a, b in zip(batched, one):  # the same up to float summation order
        assert [r['label'] for r in a['ranking']] == [r['label'] for r in b['ranking']]
        assert [r['score'] for r in a['ranking']] == pytest.approx(
            [r['score'] for r in b['ranking']], abs=1e-6)


def test_point_samples_views_saliency_and_default_classes(zero_shot):
    inf = zero_shot
    out = inf(_cone(), texts=TEXTS[:2], return_datasamples=True, top_k=2)
    sample = out['predictions'][0]
    assert sample.points.shape == (256, 3)
    assert sample.views.shape[0] == 3 and sample.saliency.shape == (256, )
    assert np.isfinite(sample.saliency).all() and (sample.saliency >= 0).all()
    assert inf.pred_to_dict(sample)['label'] in TEXTS[:2]
    classes = list(inf.model.classes)
    assert len(classes) >= 2
    ranked = inf(_torus(), return_vis=False)['predictions'][0]['ranking']
    assert sorted(r['label'] for r in ranked) == sorted(classes)
    other = PointCloudZeroShotInferencer(inf.model, num_points=320, show_progress=False)
    try:
        assert other(_cone(), texts=TEXTS, return_datasamples=True,
                     return_vis=False)['predictions'][0].points.shape == (320, 3)
    finally:
        inf.points_preprocessor.num_points = 256  # one model, shared


def test_point_errors_name_what_is_wrong(zero_shot, zipper, tmp_path):
    inf = zero_shot
    for cloud, match in [(np.zeros((0, 3), np.float32), 'empty'),
                         (np.zeros((5, 2), np.float32), r'\(N, 3\+\)'),
                         (np.full((5, 3), np.nan, np.float32), 'NaN')]:
        with pytest.raises(ValueError, match=match):
            inf(cloud, texts=TEXTS)
    empty = tmp_path / 'empty.xyz'
    empty.write_text('')
    with pytest.raises(ValueError, match='empty.xyz'):
        inf(str(empty), texts=TEXTS)
    with pytest.raises(FileNotFoundError, match='gone.npy'):
        inf(str(tmp_path / 'gone.npy'), texts=TEXTS)
    for texts, error in [(['cone'], ValueError), (['cone', 'cone'], ValueError),
                         (['cone', ' '], ValueError), ([1, 2], TypeError)]:
        with pytest.raises(error, match='texts'):
            inf(_cone(), texts=texts)
    classes, inf.model.classes = inf.model.classes, None
    try:
        with pytest.raises(ValueError, match='needs class names'):
            inf(_cone())
    finally:
        inf.model.classes = classes
    with pytest.raises(ValueError, match='top_k'):
        inf(_cone(), texts=TEXTS, top_k=0)
    with pytest.raises(ValueError, match='num_points'):
        PointCloudZeroShotInferencer(inf.model, num_points=0)
    with pytest.raises(TypeError, match='PointCLIPAligner'):
        PointCloudZeroShotInferencer(zipper['asr'])


def test_built_from_model_index_names(zipper):
    """A model-index name (its config's stem) builds the same model types; with
    ``weights=False`` nothing is loaded and the output is still well-formed."""
    from mmfusion.apis import list_models
    names = set(list_models())

    def name_of(config):
        name = osp.splitext(osp.basename(config))[0]
        assert name in names, f'{name} is not in the model index'
        return name

    asr = ASRInferencer(name_of(_zipper_config('text', 'speech')), weights=False,
                        cfg_options=zipper['opts'], show_progress=False)
    assert isinstance(asr(_speech())['predictions'][0]['text'], str)
    tts = TTSInferencer(name_of(_zipper_config('speech', 'text')), weights=False,
                        cfg_options=zipper['opts'], show_progress=False)
    assert tts('a star', return_vis=False)['predictions'][0]['text'] == 'a star'
    cap = MambaCaptionInferencer(name_of(_mamba_config('linear')), weights=False,
                                 show_progress=False)
    assert cap.architecture == 'linear' and isinstance(
        cap('skimage:coffee', return_vis=False)['predictions'][0]['caption'], str)
    config = _config('i2pmae', ['zeroshot_*.py'], lambda m: m.get('type') == 'PointCLIPAligner')
    points = PointCloudZeroShotInferencer(name_of(config), weights=False, show_progress=False)
    ranked = points(_torus(1100), texts=TEXTS, return_vis=False)['predictions'][0]['ranking']
    assert sorted(r['label'] for r in ranked) == sorted(TEXTS)
