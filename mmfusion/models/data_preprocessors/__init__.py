from .audio_data_preprocessor import AudioDataPreprocessor
from .multimodal_data_preprocessor import MultiModalDataPreprocessor
from .point_data_preprocessor import PointDataPreprocessor

__all__ = ['MultiModalDataPreprocessor', 'AudioDataPreprocessor', 'PointDataPreprocessor']
