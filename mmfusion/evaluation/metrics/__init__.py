from .open_vocab_accuracy import OpenVocabAccuracy
from .seg_overlap_metric import BinarySegMetric, binary_overlap_scores

__all__ = ['BinarySegMetric', 'binary_overlap_scores', 'OpenVocabAccuracy']
