from .char_tokenizer import CharTokenizer
from .speech_unit_tokenizer import SpeechUnitTokenizer, SSLSpeechUnitTokenizer
from .word_tokenizer import WordTokenizer

__all__ = ['CharTokenizer', 'SpeechUnitTokenizer', 'SSLSpeechUnitTokenizer', 'WordTokenizer']
