from .char_tokenizer import CharTokenizer
from .speech_units import SpeechUnitTokenizer

__all__ = ['CharTokenizer', 'SpeechUnitTokenizer']
