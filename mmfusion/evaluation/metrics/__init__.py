from .binary_seg_metric import BinarySegMetric, binary_overlap_scores
from .caption_metric import CaptionMetric, caption_scores
from .coco_mask_ap_metric import CocoMaskAPMetric, coco_mask_ap
from .matting_metric import MattingMetric, matting_errors
from .open_vocab_accuracy import OpenVocabAccuracy
from .panoptic_quality_metric import PanopticQualityMetric, panoptic_matches, pq_from_stats
from .promptable_seg_metric import PromptableSegMetric, number_of_clicks
from .referring_seg_metric import ReferringSegMetric
from .retrieval_recall_metric import RetrievalRecallMetric, retrieval_recall
from .sem_seg_iou_metric import SemSegIoUMetric
from .speech_recognition_metric import SpeechRecognitionMetric, UnitErrorRateMetric, error_rates
from .token_perplexity_metric import TokenPerplexityMetric

__all__ = ['BinarySegMetric', 'binary_overlap_scores', 'OpenVocabAccuracy', 'SemSegIoUMetric',
           'PanopticQualityMetric', 'panoptic_matches', 'pq_from_stats', 'CocoMaskAPMetric',
           'coco_mask_ap', 'ReferringSegMetric', 'CaptionMetric', 'caption_scores',
           'RetrievalRecallMetric', 'retrieval_recall', 'SpeechRecognitionMetric', 'error_rates',
           'UnitErrorRateMetric', 'TokenPerplexityMetric', 'PromptableSegMetric',
           'number_of_clicks', 'MattingMetric', 'matting_errors']
