"""Speech units from a self-supervised encoder (k-means over a HuBERT-shaped
Wav2Vec2Encoder layer), checked against torchaudio and scikit-learn."""
import json

import numpy as np
import pytest
import torch

from mmfusion.models.tokenizers import SpeechUnitTokenizer, SSLSpeechUnitTokenizer
from mmfusion.registry import MODELS

from tools.dataset_converters.generate_synth_speech import main as generate
from tools.misc.fit_speech_units import TINY_HUBERT, read_manifest
from tools.misc.fit_speech_units import main as fit_units

pytestmark = pytest.mark.usefixtures('one_thread')

# HuBERT's frame geometry (400-sample receptive field, stride 320) at a test size.
ARCH = dict(TINY_HUBERT, encoder_embed_dim=16, encoder_num_heads=2,
            encoder_ff_interm_features=32, encoder_pos_conv_groups=4,
            extractor_conv_layer_config=[[16, 10, 5]] + [[16, 3, 2]] * 4 + [[16, 2, 2]] * 2)
ENCODER = dict(type='Wav2Vec2Encoder', arch=ARCH)


@pytest.fixture(scope='module')
def speech_root(tmp_path_factory):
    out, _ = generate(['--out', str(tmp_path_factory.mktemp('speech')), '--num-train', '8',
                       '--num-val', '2', '--num-text', '4'])
    return out


def _waves(root, split='train'):
    import soundfile
    return [soundfile.read(item['audio'], dtype='float32')[0]
            for item in read_manifest(f'{root}/{split}.jsonl')]


def test_ssl_units_are_kmeans_of_the_encoder_layer(speech_root, tmp_path):
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances_argmin
    waves = _waves(speech_root)
    torch.manual_seed(0)
    tok = SSLSpeechUnitTokenizer(ENCODER, layer=2, num_units=10)
    tok.fit(waves, seed=0)
    # Reference features: torchaudio's own model with the tokenizer's weights.
    reference = MODELS.build(dict(ENCODER, frozen=True)).model
    reference.load_state_dict(tok.encoder.model.state_dict())
    with torch.no_grad():
        feats = [reference.extract_features(torch.from_numpy(w)[None])[0][1][0] for w in waves]
    mels = [tok.log_mel(w) for w in waves]
    # One frame each, 20 ms apart; the 512-point FFT frame may drop a last one.
    assert all(0 <= len(f) - len(m) <= 1 for f, m in zip(feats, mels))
    feats = [f[:len(m)] for f, m in zip(feats, mels)]
    x = torch.cat(feats)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-3)
    torch.testing.assert_close(tok.mean, mean, rtol=1e-4, atol=1e-5)
    kmeans = KMeans(10, n_init=1, random_state=0).fit(((x - mean) / std).numpy())
    torch.testing.assert_close(tok.centroids, torch.from_numpy(kmeans.cluster_centers_).float(),
                               rtol=1e-3, atol=1e-4)
    frames = tok.frame_units(waves[0])
    expected = pairwise_distances_argmin(((feats[0] - mean) / std).numpy(),
                                         tok.centroids.numpy())
    assert np.array_equal(frames.numpy(), expected)
    # Each unit's log-mel is the mean log-mel of the frames it was fitted on.
    mel = torch.cat(mels)
    labels = torch.from_numpy(kmeans.labels_).long()
    for unit in (0, 5, 9):
        torch.testing.assert_close(tok.unit_log_mel()[unit], mel[labels == unit].mean(0),
                                   rtol=1e-4, atol=1e-4)
    assert tok.units_to_log_mel(torch.tensor([3, 7]), 2.0).shape == (4, 80)
    # The random-init encoder travels with the units: another seed, loaded, gives the same units.
    path = str(tmp_path / 'ssl_units.pth')
    tok.save(path)
    torch.manual_seed(1)
    loaded = SSLSpeechUnitTokenizer(ENCODER, layer=2, num_units=10, checkpoint=path)
    assert torch.equal(loaded.quantize(waves[1]), tok.quantize(waves[1]))
    assert not loaded.encoder.training and not any(
        p.requires_grad for p in loaded.encoder.parameters())


def test_unit_files_of_other_features_are_refused(speech_root, tmp_path):
    waves = _waves(speech_root)[:2]
    log_mel = SpeechUnitTokenizer(num_units=6)
    log_mel.fit(waves)
    path = str(tmp_path / 'log_mel.pth')
    log_mel.save(path)
    with pytest.raises(RuntimeError, match=r'log_mel.pth does not fit .*SSLSpeechUnitTokenizer'):
        SSLSpeechUnitTokenizer(ENCODER, layer=1, num_units=6, checkpoint=path)
    ssl = SSLSpeechUnitTokenizer(ENCODER, layer=1, num_units=6)
    ssl.fit(waves)
    ssl.save(path)
    with pytest.raises(RuntimeError, match=r'does not fit .*unexpected keys'):
        SpeechUnitTokenizer(num_units=6, checkpoint=path)
    deeper = dict(ENCODER, arch=dict(ARCH, encoder_embed_dim=32, encoder_num_heads=4))
    with pytest.raises(RuntimeError, match='shape mismatches'):
        SSLSpeechUnitTokenizer(deeper, layer=1, num_units=6, checkpoint=path)


def test_fit_tool_writes_ssl_units_a_zipper_reads(speech_root, tmp_path):
    out = str(tmp_path / 'u.pth')
    report = fit_units([f'{speech_root}/train.jsonl', '--num-units', '8', '--features', 'ssl',
                        '--ssl-arch', json.dumps(ARCH), '--ssl-layer', '1', '--out', out])
    assert report['features'] == 'ssl' and report['units_used'] == 8
    assert 5 < report['units_per_second'] < 50
    unit_tokenizer = dict(type='SSLSpeechUnitTokenizer', encoder=ENCODER, layer=1, num_units=8,
                          checkpoint=out)
    tower = dict(type='CausalDecoderTower', dim=16, depth=2, num_heads=2, ffn_dim=32)
    model = MODELS.build(dict(
        type='Zipper', output='text', context='speech', unit_tokenizer=unit_tokenizer,
        decoder=dict(type='ZipperDecoder',
                     towers=dict(text=dict(tower, vocab_size=32), speech=dict(tower, vocab_size=11)),
                     links=[dict(query='text', context='speech', every=1, num_heads=2)])))
    wave = torch.from_numpy(_waves(speech_root, 'val')[0])
    units = model.unit_tokenizer.quantize(wave)
    # Audio and the unit ids it quantizes to are the same input to the model.
    inputs = dict(audio=wave[None], text=['a red circle'])
    by_units = dict(units=[units], text=['a red circle'])
    torch.testing.assert_close(model.loss(inputs)['loss_ntp'], model.loss(by_units)['loss_ntp'])


def test_configs_use_the_encoder_the_fit_tool_fits_by_default():
    from mmengine.config import Config

    from tests.conftest import REPO
    cfg = Config.fromfile(f'{REPO}/configs/zipper/zipper_speech-lm_hubert-units-tiny_1xb16-600it_synth-speech.py')
    tokenizer = cfg.model.unit_tokenizer
    assert tokenizer.type == 'SSLSpeechUnitTokenizer' and tokenizer.layer == 1
    assert json.loads(json.dumps(tokenizer.encoder.arch.to_dict())) == \
        json.loads(json.dumps(TINY_HUBERT))
