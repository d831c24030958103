"""Zipper's baseline: one decoder whose vocabulary is expanded with speech units."""
from typing import Dict, List, Optional

import torch
from torch import Tensor

from mmfusion.models.common.base_model import FusionBaseModel
from mmfusion.models.common.generation import greedy_decode
from mmfusion.models.common.sequence import (
    BOS,
    EOS,
    PAD,
    lengths_to_padding_mask,
    next_token_loss,
    pad_sequences,
    token_noise,
)
from mmfusion.registry import MODELS, TOKENIZERS
from mmfusion.structures import FusionDataSample
from mmfusion.utils.checkpoint import safe_torch_load


@MODELS.register_module()
class VocabExpansionASR(FusionBaseModel):
    """ASR with a single decoder over text tokens and speech units.

    The comparison of the Zipper paper: instead of a second tower, the
    (pretrained) text decoder's vocabulary grows by the speech units (unit
    ``u`` gets id ``text_vocab + u``, a new embedding row). An utterance is
    the sequence ``units <s> characters </s>``; the next-token loss covers the
    characters only. Prediction feeds ``units <s>`` and decodes greedily.

    Args:
        tower (dict): ``CausalDecoderTower`` config; its ``vocab_size`` must be
            the text vocabulary plus the units.
        text_checkpoint (str, optional): A text-tower pretraining checkpoint
            (``zipper_text-lm``); its weights initialise the tower, the text
            rows of the embedding included; unit rows keep their random init.
        text_prefix (str): Prefix of the text tower in that checkpoint.
        text_tokenizer (dict): ``CharTokenizer`` config.
        unit_tokenizer (dict): Fitted ``SpeechUnitTokenizer`` config.
        max_new_tokens (int): Decoding limit.
        unit_noise (float): Training only: each unit of the prompt becomes a
            random unit with this probability (as ``Zipper``'s
            ``context_noise``). 0 (default) disables it.
    """

    def __init__(self,
                 tower: dict,
                 unit_tokenizer: dict,
                 text_checkpoint: Optional[str] = None,
                 text_prefix: str = 'decoder.towers.text.',
                 text_tokenizer: dict = dict(type='CharTokenizer'),
                 max_new_tokens: int = 120,
                 unit_noise: float = 0.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.text_tokenizer = TOKENIZERS.build(text_tokenizer)
        self.unit_tokenizer = TOKENIZERS.build(unit_tokenizer)
        self.unit_tokenizer.requires_grad_(False)
        self.unit_offset = self.text_tokenizer.vocab_size
        self.tower = MODELS.build(tower)
        expected = self.unit_offset + self.unit_tokenizer.num_units
        if self.tower.vocab_size != expected:
            raise ValueError(f'tower vocab_size {self.tower.vocab_size}; text + units need '
                             f'{expected}')
        self.text_checkpoint, self.text_prefix = text_checkpoint, text_prefix
        self.max_new_tokens = max_new_tokens
        if not 0.0 <= unit_noise < 1.0:
            raise ValueError(f'unit_noise must lie in [0, 1), got {unit_noise}')
        self.unit_noise = unit_noise

    def init_weights(self) -> None:
        super().init_weights()
        if self.text_checkpoint is None:
            return
        ckpt = safe_torch_load(self.text_checkpoint)
        state = {k[len(self.text_prefix):]: v for k, v in ckpt.get('state_dict', ckpt).items()
                 if k.startswith(self.text_prefix)}
        if not state:
            raise KeyError(f'{self.text_checkpoint}: no key starts with {self.text_prefix!r}')
        emb = state.pop('embedding.weight')
        with torch.no_grad():
            self.tower.embedding.weight[:emb.shape[0]] = emb
        missing, unexpected = self.tower.load_state_dict(state, strict=False)
        if unexpected or set(missing) != {'embedding.weight'}:
            raise KeyError(f'{self.text_checkpoint} does not fit the tower: missing '
                           f'{sorted(set(missing) - {"embedding.weight"})}, unexpected '
                           f'{sorted(unexpected)}')

    def _prompts(self, inputs: Dict) -> List[Tensor]:
        """``units <s>`` per utterance."""
        device = self.tower.embedding.weight.device
        prompts = []
        for units in self.unit_tokenizer.quantize_batch(inputs['audio'],
                                                        inputs.get('audio_lengths')):
            units = units.to(device) + self.unit_offset
            prompts.append(torch.cat([units, units.new_tensor([BOS])]))
        return prompts

    def _forward(self, inputs: Dict, data_samples=None) -> Dict:
        tokens, _ = pad_sequences(self._prompts(inputs), PAD)
        return self.tower(tokens.long())

    def loss(self, inputs: Dict, data_samples=None) -> Dict[str, Tensor]:
        seqs, labels = [], []
        for prompt, text in zip(self._prompts(inputs), inputs['text']):
            if self.unit_noise > 0:
                units = token_noise(prompt[:-1], self.unit_noise, self.unit_offset,
                                    self.tower.vocab_size)
                prompt = torch.cat([units, prompt[-1:]])
            chars = prompt.new_tensor(self.text_tokenizer.encode(text, bos=False, eos=True))
            seqs.append(torch.cat([prompt, chars]))
            # Predict the characters (after <s>) only.
            labels.append(torch.cat([torch.full_like(prompt[1:], PAD), chars]))
        tokens, lengths = pad_sequences(seqs, PAD)
        targets, _ = pad_sequences(labels, PAD)
        mask = lengths_to_padding_mask(lengths, tokens.shape[1])
        logits = self.tower(tokens.long(), mask)['logits'][:, :-1]
        return next_token_loss(logits, targets.long())

    @torch.no_grad()
    def generate(self, prompt: Tensor) -> Tensor:
        """Greedy text after one ``units <s>`` prompt (L,), with a key/value
        cache: (1, L + n) ids, the prompt, then text tokens up to ``</s>``.
        Unit ids are never generated."""
        caches = self.tower.new_caches()

        def step(ids: Tensor) -> Tensor:
            return self.tower(ids, caches=caches)['logits'][:, -1, :self.unit_offset]

        return greedy_decode(step, prompt[None], self.max_new_tokens, EOS, PAD)

    def predict(self, inputs: Dict, data_samples: Optional[List[FusionDataSample]] = None
                ) -> List[FusionDataSample]:
        prompts = self._prompts(inputs)
        data_samples = self.fill_data_samples(data_samples, len(prompts))
        # One utterance at a time: prompts differ in length and decoding
        # appends after each prompt's end.
        for i, (prompt, sample) in enumerate(zip(prompts, data_samples)):
            seq = self.generate(prompt)
            sample.pred_text = self.text_tokenizer.decode(seq[0, len(prompt):].tolist())
            if 'text' in inputs:
                sample.gt_text = self.text_tokenizer.normalise(inputs['text'][i])
        return data_samples
