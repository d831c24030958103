"""The Zipper model: pretraining/ASR/TTS modes, decoding, freezing."""
import copy

import pytest
import soundfile
import torch

from mmfusion.models.common.sequence import EOS, PAD
from mmfusion.models.tokenizers import SpeechUnitTokenizer
from mmfusion.registry import MODELS

from tools.dataset_converters.generate_synth_speech import main as generate
from tools.misc.fit_speech_units import read_manifest

pytestmark = pytest.mark.usefixtures('one_thread')
UNITS = 8


@pytest.fixture(scope='module')
def speech(tmp_path_factory):
    root = tmp_path_factory.mktemp('speech')
    out, _ = generate(['--out', str(root), '--num-train', '6', '--num-val', '2',
                       '--num-text', '5'])
    items = read_manifest(f'{out}/train.jsonl')
    waves = [torch.from_numpy(soundfile.read(i['audio'], dtype='float32')[0]) for i in items]
    tokenizer = SpeechUnitTokenizer(num_units=UNITS)
    tokenizer.fit(waves)
    path = str(root / 'units.pth')
    tokenizer.save(path)
    return path, waves[:3], [i['text'] for i in items[:3]]


def _cfg(units_file, output='text', context='speech', text=None, position_rate=None):
    tower = dict(type='CausalDecoderTower', dim=16, depth=2, num_heads=2, ffn_dim=32)
    return dict(
        type='Zipper', output=output, context=context, max_new_tokens=30,
        decoder=dict(type='ZipperDecoder', towers=dict(
            text=dict(tower, vocab_size=32, **(text or {})),
            speech=dict(tower, vocab_size=UNITS + 3, dim=24, num_heads=4)),
            links=[] if context is None else [dict(query=output, context=context, every=1,
                                                   position_rate=position_rate)]),
        unit_tokenizer=dict(type='SpeechUnitTokenizer', num_units=UNITS, checkpoint=units_file))


def _inputs(waves, texts):
    audio, lengths = torch.zeros(len(waves), max(len(w) for w in waves)), []
    for i, w in enumerate(waves):
        audio[i, :len(w)] = w
        lengths.append(len(w))
    return dict(audio=audio, audio_lengths=torch.tensor(lengths), text=list(texts))


def test_asr_with_closed_gates_equals_the_text_language_model(speech):
    units_file, waves, texts = speech
    torch.manual_seed(0)
    asr = MODELS.build(_cfg(units_file)).eval()
    lm = MODELS.build(_cfg(units_file, context=None)).eval()
    lm.decoder.towers.text.load_state_dict(asr.decoder.towers.text.state_dict())
    inputs = _inputs(waves, texts)
    got = asr(inputs, mode='tensor')['text']['logits']
    assert torch.equal(got, lm(inputs, mode='tensor')['text']['logits'])
    for block in asr.decoder.cross_attn.values():
        block.gate.data.fill_(1.0)
    assert not torch.equal(asr(inputs, mode='tensor')['text']['logits'], got)


def test_loss_trains_exactly_the_unfrozen_parts(speech):
    units_file, waves, texts = speech
    model = MODELS.build(_cfg(units_file, text=dict(frozen=True)))
    model.train()
    for block in model.decoder.cross_attn.values():
        block.gate.data.fill_(0.5)
    losses = model(_inputs(waves, texts), mode='loss')
    assert torch.isfinite(losses['loss_ntp']) and 0 <= losses['acc_ntp'] <= 1
    losses['loss_ntp'].backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.any()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # Text tower frozen; unit tokenizer centroids are buffers, never parameters.
    assert not any(n.startswith('decoder.towers.text.') for n in trainable)
    assert grads == trainable - {'decoder.towers.speech.norm.weight'}


@pytest.mark.parametrize('output,context,position_rate',
                         [('text', 'speech', None), ('speech', 'text', None),
                          ('text', 'speech', 1.65)])
def test_greedy_decoding_is_consistent_with_teacher_forcing(speech, output, context,
                                                             position_rate):
    """Cached one-token steps (positions of cross-attention included) predict
    what the whole generated sequence, run at once, predicts."""
    units_file, waves, texts = speech
    torch.manual_seed(1)
    model = MODELS.build(_cfg(units_file, output, context, position_rate=position_rate)).eval()
    for block in model.decoder.cross_attn.values():
        block.gate.data.fill_(1.0)
    inputs = _inputs(waves, texts)
    seq = model.generate(inputs)
    tokens, masks = model._context(inputs)
    logits = model.decoder({**tokens, output: seq}, masks)[output]['logits']
    for i in range(seq.shape[0]):
        ids = seq[i].tolist()
        end = ids.index(EOS) if EOS in ids else len(ids) - 1
        assert logits[i, :end].argmax(-1).tolist() == ids[1:end + 1]
        assert all(t == PAD for t in ids[end + 1:])
    samples = model.predict(inputs)
    if output == 'text':
        assert all(isinstance(s.pred_text, str) for s in samples)
        assert [s.gt_text for s in samples] == [model.text_tokenizer.normalise(t) for t in texts]
    else:
        # gt_units are the recording's units as the tokenizer gives them.
        tokenizer = SpeechUnitTokenizer(num_units=UNITS)
        tokenizer.load(units_file)
        for s, wave in zip(samples, waves):
            assert s.pred_units.dtype == torch.long and (s.pred_units < UNITS).all()
            assert torch.equal(s.gt_units, tokenizer.quantize(wave))


def test_configuration_errors_are_named(speech):
    units_file, _, _ = speech
    cfg = _cfg(units_file)
    cfg['decoder']['towers']['speech']['vocab_size'] = UNITS
    with pytest.raises(ValueError, match=r'the speech tower has vocab_size 8; its tokenizer needs 11'):
        MODELS.build(cfg)
    cfg = _cfg(units_file)
    cfg['unit_tokenizer'] = None
    with pytest.raises(ValueError, match='a speech tower needs unit_tokenizer'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='output must be one of'):
        MODELS.build(dict(copy.deepcopy(_cfg(units_file)), context='text'))


def test_vocab_expansion_baseline_starts_from_the_text_tower(speech, tmp_path):
    units_file, waves, texts = speech
    torch.manual_seed(0)
    lm = MODELS.build(_cfg(units_file, context=None))
    text_lm = str(tmp_path / 'text_lm.pth')
    torch.save(dict(state_dict=lm.state_dict()), text_lm)
    tower = dict(type='CausalDecoderTower', vocab_size=32 + UNITS, dim=16, depth=2, num_heads=2,
                 ffn_dim=32)
    model = MODELS.build(dict(type='VocabExpansionASR', tower=tower, text_checkpoint=text_lm,
                              max_new_tokens=10,
                              unit_tokenizer=dict(type='SpeechUnitTokenizer', num_units=UNITS,
                                                  checkpoint=units_file)))
    model.init_weights()
    emb = model.tower.embedding.weight
    assert torch.equal(emb[:32], lm.decoder.towers.text.embedding.weight)
    assert torch.equal(model.tower.layers[0].ffn.up.weight,
                       lm.decoder.towers.text.layers[0].ffn.up.weight)
    inputs = _inputs(waves, texts)
    losses = model(inputs, mode='loss')
    # The loss covers exactly the characters + </s>: a reference from the logits.
    prompts = model._prompts(inputs)
    total, count = 0.0, 0
    for prompt, text in zip(prompts, texts):
        chars = model.text_tokenizer.encode(text, bos=False, eos=True)
        seq = torch.cat([prompt, torch.tensor(chars)])
        logits = model.tower(seq[None])['logits'][0]
        total += torch.nn.functional.cross_entropy(logits[len(prompt) - 1:-1],
                                                   torch.tensor(chars), reduction='sum')
        count += len(chars)
    torch.testing.assert_close(losses['loss_ntp'], total / count, rtol=1e-5, atol=1e-6)
    samples = model.predict(inputs)
    assert all(isinstance(s.pred_text, str) and s.gt_text for s in samples)
    # Cached decoding predicts what teacher forcing on its own output predicts.
    for prompt, sample in zip(prompts, samples):
        seq = model.generate(prompt)[0]
        generated = seq[len(prompt):]
        assert 0 < len(generated) <= model.max_new_tokens
        assert EOS not in generated[:-1].tolist() and (generated < model.unit_offset).all()
        logits = model.tower(seq[None])['logits'][0, len(prompt) - 1:-1, :model.unit_offset]
        assert logits.argmax(-1).tolist() == generated.tolist()
        assert sample.pred_text == model.text_tokenizer.decode(generated.tolist())
    # Unit noise changes the training loss only: the characters' part is untouched.
    model.unit_noise = 0.5
    torch.manual_seed(0)
    noisy = model(inputs, mode='loss')['loss_ntp']
    assert not torch.isclose(noisy, losses['loss_ntp'])
    assert [s.pred_text for s in model.predict(inputs)] == [s.pred_text for s in samples]
    with pytest.raises(ValueError, match='text \\+ units need 40'):
        MODELS.build(dict(type='VocabExpansionASR', tower=dict(tower, vocab_size=32),
                          unit_tokenizer=dict(type='SpeechUnitTokenizer', num_units=UNITS,
                                              checkpoint=units_file)))


def test_units_given_directly_equal_the_tokenized_audio(speech):
    """``inputs['units']`` (a TTS round trip) is the same speech as its audio."""
    units_file, waves, texts = speech
    torch.manual_seed(2)
    model = MODELS.build(_cfg(units_file)).eval()
    for block in model.decoder.cross_attn.values():
        block.gate.data.fill_(1.0)
    inputs = _inputs(waves, texts)
    units = model.unit_tokenizer.quantize_batch(inputs['audio'], inputs['audio_lengths'])
    from_units = dict(units=units, text=texts)
    torch.testing.assert_close(model(from_units)['text']['logits'],
                               model(inputs)['text']['logits'], rtol=0, atol=0)
    assert [s.pred_text for s in model.predict(dict(units=units))] == \
        [s.pred_text for s in model.predict(inputs)]
    with pytest.raises(ValueError, match=r'inputs\["units"\]\[1\] holds ids in \[0, 8\]'):
        model.predict(dict(units=[units[0], torch.tensor([0, UNITS])]))


def test_context_noise_replaces_real_context_tokens_only_while_training(speech):
    units_file, waves, texts = speech
    model = MODELS.build(dict(_cfg(units_file), context_noise=0.3))
    tokens = torch.full((64, 50), 5)
    mask = torch.zeros(64, 50, dtype=torch.bool)
    mask[:, 40:] = True
    torch.manual_seed(0)
    noisy = model._corrupt(tokens, mask)
    changed = noisy != tokens
    assert not changed[mask].any()
    # Replacements are uniform over the units (ids 3..10): 7 of 8 differ from 5.
    assert abs(changed[~mask].float().mean().item() - 0.3 * 7 / 8) < 0.03
    assert noisy.min() >= 3 and noisy.max() < UNITS + 3
    # Only the loss sees noise: prediction and the tensor mode are deterministic.
    model.eval()
    inputs = _inputs(waves, texts)
    assert torch.equal(model(inputs)['text']['logits'], model(inputs)['text']['logits'])
    with pytest.raises(ValueError, match=r'context_noise must lie in \[0, 1\)'):
        MODELS.build(dict(_cfg(units_file), context_noise=1.0))
