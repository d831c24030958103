from .conformer import ConformerEncoder
from .log_mel import LogMelFrontend
from .utils import lengths_to_padding_mask
from .wav2vec2 import Wav2Vec2Encoder

__all__ = ['LogMelFrontend', 'Wav2Vec2Encoder', 'ConformerEncoder', 'lengths_to_padding_mask']
