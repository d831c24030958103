# Zipper stage 1b on the other units: the speech tower as an LM over k-means
# units of a tiny random-init HuBERT's first layer (instead of log-mel units).
_base_ = ['./zipper_speech-lm_tiny_1xb16-600it_synth-speech.py']
model = dict(unit_tokenizer={{_base_.hubert_unit_tokenizer}})
