"""Zipper speech/text model: unimodal pretraining, ASR and TTS in one class."""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.models.common.generation import greedy_decode
from mmfusion.models.common.sequence import (
    BOS,
    EOS,
    PAD,
    SPECIALS,
    lengths_to_padding_mask,
    next_token_loss,
    pad_sequences,
    token_noise,
)
from mmfusion.registry import MODELS, TOKENIZERS
from mmfusion.structures import FusionDataSample

# Speech-tower vocabulary: the text specials' ids, then the units (unit u -> u + 3).
UNIT_OFFSET = 3


def check_zipper_task(model, output: str, context: Optional[str], subject: str) -> None:
    """Raise unless ``model`` is a Zipper running ``output`` from ``context``
    (e.g. ASR: ``'text'`` from ``'speech'``); ``subject`` names it in the error."""
    got = (getattr(model, 'output', None), getattr(model, 'context', None))
    if got != (output, context):
        raise ValueError(f'{subject} must be a Zipper with output={output!r}, '
                         f'context={context!r}; it has output={got[0]!r}, context={got[1]!r}')


@MODELS.register_module()
class Zipper(FusionBaseModel):
    """A :class:`ZipperDecoder` with tokenizers, trained by next-token loss on
    one output tower, optionally reading the other modality.

    * ``output='text', context=None``: text-tower pretraining (character LM).
    * ``output='speech', context=None``: speech-tower pretraining (unit LM).
    * ``output='text', context='speech'``: ASR.
    * ``output='speech', context='text'``: TTS (text -> speech units).

    Speech enters as waveforms (``inputs['audio']``, padded, with
    ``inputs['audio_lengths']``) and becomes units through the frozen
    ``unit_tokenizer`` (its fitted centroids are part of the state dict), or
    directly as unit ids (``inputs['units']``: a list of 1-D tensors, e.g. a
    TTS model's ``pred_units`` for a round trip).
    Text comes as ``inputs['text']`` (list of str). Each output sequence is
    ``<s> tokens </s>``; the context sequence is its plain tokens.

    Prediction is greedy decoding of the output tower (at most
    ``max_new_tokens``): ``pred_text`` (ASR, with ``gt_text`` the reference
    transcript) or ``pred_units`` (TTS, with ``gt_units`` from the audio).

    Args:
        decoder (dict): ``ZipperDecoder`` config with towers ``text`` and/or
            ``speech``.
        output (str): ``'text'`` or ``'speech'``.
        context (str, optional): The other modality, or None.
        text_tokenizer (dict): ``CharTokenizer`` config.
        unit_tokenizer (dict, optional): ``SpeechUnitTokenizer`` config with
            a fitted ``checkpoint``; needed when a tower is ``speech``.
        max_new_tokens (int): Decoding limit.
        context_noise (float): Training only: the probability with which each
            context token (speech unit for ASR, character for TTS) is
            replaced by a random one, so the fusion does not rely on exact
            tokens; for ASR a stand-in for the unit changes an unseen voice
            brings. 0 (default, the paper) disables it.
        data_preprocessor (dict, optional): ``MultiModalDataPreprocessor``
            with an ``audio`` ``AudioDataPreprocessor``.
    """

    MODALITIES = ('text', 'speech')

    def __init__(self,
                 decoder: dict,
                 output: str = 'text',
                 context: Optional[str] = None,
                 text_tokenizer: dict = dict(type='CharTokenizer'),
                 unit_tokenizer: Optional[dict] = None,
                 max_new_tokens: int = 200,
                 context_noise: float = 0.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if output not in self.MODALITIES or context not in (None, *self.MODALITIES) \
                or context == output:
            raise ValueError(f'output must be one of {self.MODALITIES} and context None or the '
                             f'other one; got output={output!r}, context={context!r}')
        self.output, self.context = output, context
        self.decoder = MODELS.build(decoder)
        for name in (output, context):
            if name is not None and name not in self.decoder.towers:
                raise KeyError(f'Zipper: {name!r} has no tower (towers: '
                               f'{sorted(self.decoder.towers)})')
        self.text_tokenizer = TOKENIZERS.build(text_tokenizer)
        self.unit_tokenizer = None
        if 'speech' in (output, context):
            if unit_tokenizer is None:
                raise ValueError('a speech tower needs unit_tokenizer (a fitted '
                                 'SpeechUnitTokenizer checkpoint)')
            self.unit_tokenizer = TOKENIZERS.build(unit_tokenizer)
            self.unit_tokenizer.requires_grad_(False)
        self._check_vocab()
        self.max_new_tokens = max_new_tokens
        if not 0.0 <= context_noise < 1.0:
            raise ValueError(f'context_noise must lie in [0, 1), got {context_noise}')
        self.context_noise = context_noise

    def _check_vocab(self) -> None:
        sizes = dict(text=self.text_tokenizer.vocab_size)
        if self.unit_tokenizer is not None:
            sizes['speech'] = self.unit_tokenizer.num_units + UNIT_OFFSET
        for name in (self.output, self.context):
            if name is not None and self.decoder.towers[name].vocab_size != sizes[name]:
                raise ValueError(f'the {name} tower has vocab_size '
                                 f'{self.decoder.towers[name].vocab_size}; its tokenizer needs '
                                 f'{sizes[name]}')

    # -- sequences -----------------------------------------------------------
    # torch.compile: excluded, per-utterance Python loops of variable length (text tokenizer,
    # speech-unit quantisation) on raw strings and waveforms; only padded tensors come out.
    @torch.compiler.disable
    def _token_batch(self, name: str, inputs: Dict, with_specials: bool) -> Tuple[Tensor, Tensor]:
        """:meth:`_batch` of :meth:`_sequences`."""
        return self._batch(self._sequences(name, inputs, with_specials))

    def _sequences(self, name: str, inputs: Dict, with_specials: bool) -> List[Tensor]:
        device = self.decoder.towers[name].embedding.weight.device
        if name == 'text':
            if 'text' not in inputs:
                raise KeyError('Zipper needs inputs["text"] (transcripts)')
            return [torch.tensor(self.text_tokenizer.encode(t, bos=with_specials,
                                                            eos=with_specials), device=device)
                    for t in inputs['text']]
        seqs = []
        for units in self._speech_units(inputs):
            units = units.to(device) + UNIT_OFFSET
            if with_specials:
                units = torch.cat([units.new_tensor([BOS]), units, units.new_tensor([EOS])])
            seqs.append(units)
        return seqs

    def _speech_units(self, inputs: Dict) -> List[Tensor]:
        """Unit ids of each utterance: ``inputs['units']`` as given (e.g. a
        TTS model's output) or the tokenized ``inputs['audio']``."""
        if 'units' in inputs:
            num_units = self.unit_tokenizer.num_units
            units = [torch.as_tensor(u, dtype=torch.long).flatten() for u in inputs['units']]
            for i, u in enumerate(units):
                if u.numel() and not 0 <= int(u.min()) <= int(u.max()) < num_units:
                    raise ValueError(f'inputs["units"][{i}] holds ids in [{int(u.min())}, '
                                     f'{int(u.max())}]; the unit tokenizer has {num_units}')
            return units
        if 'audio' not in inputs:
            raise KeyError('Zipper needs inputs["audio"] (waveforms) or inputs["units"]')
        return self.unit_tokenizer.quantize_batch(inputs['audio'], inputs.get('audio_lengths'))

    @staticmethod
    def _batch(seqs: List[Tensor]) -> Tuple[Tensor, Tensor]:
        tokens, lengths = pad_sequences(seqs, PAD)
        return tokens.long(), lengths_to_padding_mask(lengths, tokens.shape[1])

    def _context(self, inputs: Dict) -> Tuple[Dict, Dict]:
        if self.context is None:
            return {}, {}
        tokens, mask = self._token_batch(self.context, inputs, with_specials=False)
        return {self.context: tokens}, {self.context: mask}

    # -- modes -----------------------------------------------------------------
    def _forward(self, inputs: Dict, data_samples=None) -> Dict[str, Dict]:
        tokens, masks = self._context(inputs)
        out, out_mask = self._token_batch(self.output, inputs, True)
        return self.decoder({**tokens, self.output: out}, {**masks, self.output: out_mask})

    def _corrupt(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """Training-time context noise on the real (non-padding) context
        tokens, replaced by non-special ones."""
        first = UNIT_OFFSET if self.context == 'speech' else len(SPECIALS)
        vocab = self.decoder.towers[self.context].vocab_size
        return token_noise(tokens, self.context_noise, first, vocab, keep=mask)

    def loss(self, inputs: Dict, data_samples=None) -> Dict[str, Tensor]:
        target, target_mask = self._token_batch(self.output, inputs, True)
        tokens, masks = self._context(inputs)
        if self.context_noise > 0 and tokens:
            tokens = {self.context: self._corrupt(tokens[self.context], masks[self.context])}
        outs = self.decoder({**tokens, self.output: target}, {**masks, self.output: target_mask})
        return next_token_loss(outs[self.output]['logits'][:, :-1], target[:, 1:])

    @torch.no_grad()
    def generate(self, inputs: Dict, max_new_tokens: Optional[int] = None,
                 stop_at_eos: bool = True) -> Tensor:
        """Greedy decoding with a key/value cache in the output tower:
        (B, <= 1 + max_new_tokens) ids from ``<s>``, padded after each
        sequence's ``</s>``. The context tower runs once.

        Args:
            max_new_tokens (int, optional): Defaults to the model's.
            stop_at_eos (bool): False decodes ``max_new_tokens`` tokens
                whatever they are (e.g. to time decoding).
        """
        tokens, masks = self._context(inputs)
        context_out = self.decoder(tokens, masks) if tokens else {}
        batch = len(inputs[next(k for k in ('text', 'units', 'audio') if k in inputs)])
        device = self.decoder.towers[self.output].embedding.weight.device
        caches = {self.output: self.decoder.towers[self.output].new_caches()}

        def step(ids: Tensor) -> Tensor:
            outs = self.decoder({self.output: ids}, masks, context_outputs=context_out,
                                caches=caches)
            return outs[self.output]['logits'][:, -1]

        prompt = torch.full((batch, 1), BOS, dtype=torch.long, device=device)
        limit = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        return greedy_decode(step, prompt, limit, EOS if stop_at_eos else None, PAD)

    def _units(self, ids: Tensor) -> Tensor:
        ids = ids.tolist()
        ids = ids[:ids.index(EOS)] if EOS in ids else ids
        return torch.tensor([i - UNIT_OFFSET for i in ids if i >= UNIT_OFFSET], dtype=torch.long)

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                ) -> List[FusionDataSample]:
        seq = self.generate(inputs)  # not inside _pack(...): its bound method would recompile
        return self._pack(seq, inputs, data_samples)

    # torch.compile: excluded, decodes ids to strings and reads the reference texts.
    @torch.compiler.disable
    def _pack(self, seq: Tensor, inputs: Dict,
              data_samples: Optional[List[FusionDataSample]]) -> List[FusionDataSample]:
        """The generated ids ``seq`` as predictions in the data samples."""
        data_samples = self.fill_data_samples(data_samples, seq.shape[0])
        gt_units = None
        if self.output == 'speech' and ('audio' in inputs or 'units' in inputs):
            gt_units = self._speech_units(inputs)
        for i, sample in enumerate(data_samples):
            if self.output == 'text':
                sample.pred_text = self.text_tokenizer.decode(seq[i, 1:].tolist())
                if 'text' in inputs:
                    sample.gt_text = self.text_tokenizer.normalise(inputs['text'][i])
            else:
                sample.pred_units = self._units(seq[i, 1:])
                if gt_units is not None:
                    sample.gt_units = gt_units[i].cpu()
        return data_samples
