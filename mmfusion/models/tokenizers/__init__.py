from .char_tokenizer import CharTokenizer
from .speech_units import SpeechUnitTokenizer
from .word_tokenizer import WordTokenizer

__all__ = ['CharTokenizer', 'SpeechUnitTokenizer', 'WordTokenizer']
