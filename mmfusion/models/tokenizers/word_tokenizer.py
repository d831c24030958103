"""Word-level tokenizer over a closed vocabulary (small captioning models)."""
import re
from typing import List, Sequence

from mmfusion.models.common.sequence import BOS, EOS, SPECIALS, UNK
from mmfusion.registry import TOKENIZERS

from .char_tokenizer import content_indices

_TOKEN = re.compile(r"\w+|[^\w\s]")


@TOKENIZERS.register_module()
class WordTokenizer:
    """Lower-cased words and punctuation marks -> ids, after the specials of
    :class:`CharTokenizer` (``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3).

    Text splits into runs of word characters and single punctuation marks
    (``"a red star, on"`` -> ``a red star , on``). A token outside ``vocab``
    raises ``ValueError`` naming it and the text (``oov='error'``, the
    default: a closed caption language should not silently lose words) or
    becomes ``<unk>`` (``oov='unk'``). Decoding joins words with spaces and
    attaches punctuation to the word before it.

    Args:
        vocab (list[str]): The tokens, in id order after the specials.
        oov (str): ``'error'`` or ``'unk'``.
    """

    def __init__(self, vocab: Sequence[str], oov: str = 'error') -> None:
        if oov not in ('error', 'unk'):
            raise ValueError(f"oov must be 'error' or 'unk', got {oov!r}")
        vocab = [w.lower() for w in vocab]
        if len(set(vocab)) != len(vocab) or set(vocab) & set(SPECIALS):
            raise ValueError(f'vocab has repeated or special tokens: {vocab}')
        self.vocab = vocab
        self.oov = oov
        self.index = {w: i + len(SPECIALS) for i, w in enumerate(vocab)}

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.vocab)

    def encode(self, text: str, bos: bool = True, eos: bool = True) -> List[int]:
        tokens = _TOKEN.findall(text.lower())
        unknown = sorted({t for t in tokens if t not in self.index})
        if unknown and self.oov == 'error':
            raise ValueError(f'tokens {unknown} are not in the tokenizer vocabulary '
                             f'(text: {text!r})')
        return [BOS] * bos + [self.index.get(t, UNK) for t in tokens] + [EOS] * eos

    def decode(self, ids: Sequence[int]) -> str:
        """Tokens up to the first ``</s>``; specials are skipped."""
        out = ''
        for k in content_indices(ids, self.vocab_size):
            word = self.vocab[k]
            out += word if (not out or not word[0].isalnum() and len(word) == 1) else ' ' + word
        return out
