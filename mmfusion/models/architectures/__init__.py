from .clip_pretrainer import CLIPPretrainer
from .frozen_feature_classifier import FrozenFeatureClassifier
from .gms import GMS
from .kl_autoencoder import KLAutoencoder
from .mmmamba import MambaDistiller, MultimodalCausalLM
from .region_text_pretrainer import RegionTextHead, RegionTextPretrainer
from .xdecoder import XDecoder
from .vocab_expansion import VocabExpansionASR
from .zipper import Zipper

__all__ = ['GMS', 'KLAutoencoder', 'CLIPPretrainer', 'FrozenFeatureClassifier', 'XDecoder',
           'Zipper', 'VocabExpansionASR', 'MultimodalCausalLM', 'MambaDistiller',
           'RegionTextPretrainer', 'RegionTextHead']
