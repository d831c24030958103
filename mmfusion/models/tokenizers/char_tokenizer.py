"""Character-level text tokenizer for small text towers (Zipper ASR/TTS)."""
import logging
import re
from typing import List, Sequence

from mmengine.logging import print_log

from mmfusion.models.common.sequence import BOS, EOS, SPECIALS, UNK
from mmfusion.registry import TOKENIZERS


def content_indices(ids: Sequence[int], vocab_size: int) -> List[int]:
    """The non-special tokens of ``ids`` up to the first ``</s>``, as indices
    into the tokenizer's own symbols (id minus the specials).

    Raises:
        ValueError: an id outside ``[0, vocab_size)``.
    """
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if not 0 <= i < vocab_size:
            raise ValueError(f'token id {i} outside the vocabulary [0, {vocab_size})')
        if i >= len(SPECIALS):
            out.append(i - len(SPECIALS))
    return out


@TOKENIZERS.register_module()
class CharTokenizer:
    """Lower-cased characters of a fixed alphabet -> ids, after 4 specials
    (``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3).

    Text is lower-cased and runs of whitespace become one space. Characters
    outside the alphabet follow ``oov``:

    * ``'drop'`` (default): removed; each such character is logged once as a
      warning, so a transcript with digits or punctuation still trains;
    * ``'unk'``: encoded as ``<unk>`` (decoded as nothing);
    * ``'error'``: ``ValueError`` naming the characters and the text.

    Args:
        alphabet (str): The characters, in id order after the specials.
        oov (str): See above.
    """

    def __init__(self, alphabet: str = "abcdefghijklmnopqrstuvwxyz '", oov: str = 'drop') -> None:
        if oov not in ('drop', 'unk', 'error'):
            raise ValueError(f"oov must be 'drop', 'unk' or 'error', got {oov!r}")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f'alphabet has repeated characters: {alphabet!r}')
        self.alphabet = alphabet
        self.oov = oov
        self.index = {c: i + len(SPECIALS) for i, c in enumerate(alphabet)}
        self._warned: set = set()

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.alphabet)

    def normalise(self, text: str) -> str:
        return re.sub(r'\s+', ' ', text.lower()).strip()

    def encode(self, text: str, bos: bool = True, eos: bool = True) -> List[int]:
        text = self.normalise(text)
        unknown = sorted({c for c in text if c not in self.index})
        if unknown and self.oov == 'error':
            raise ValueError(f'characters {unknown} are not in the tokenizer alphabet '
                             f'{self.alphabet!r} (text: {text!r})')
        new = [c for c in unknown if c not in self._warned]
        if new and self.oov == 'drop':
            self._warned.update(new)
            print_log(f'CharTokenizer: dropping characters outside the alphabet: {new} '
                      f'(first seen in {text!r})', logger='current', level=logging.WARNING)
        ids = [self.index.get(c, UNK) for c in text
               if c in self.index or self.oov == 'unk']
        return [BOS] * bos + ids + [EOS] * eos

    def decode(self, ids: Sequence[int]) -> str:
        """Characters up to the first ``</s>``; specials are skipped."""
        return self.normalise(''.join(self.alphabet[i] for i in content_indices(
            ids, self.vocab_size)))
