"""CLIP (Radford et al., 2021): contrastive image-text pretraining with
zero-shot prediction, and linear probes on frozen encoders."""
from .clip_pretrainer import CLIPPretrainer
from .frozen_feature_classifier import FrozenFeatureClassifier

__all__ = ['CLIPPretrainer', 'FrozenFeatureClassifier']
