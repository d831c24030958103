import argparse
import os.path as osp
import re
from typing import Dict, List, Optional, Union

import torch
from torch import Tensor

from mmfusion.models.encoders.base_encoder import BaseEncoder
from mmfusion.registry import MODELS
from mmfusion.utils import load_state_dict_file, load_strict, select_prefix
from mmfusion.utils.dependency import require

from .utils import full_lengths, lengths_to_padding_mask

# torchaudio factories that return a ``Wav2Vec2Model`` (HuBERT and WavLM
# included); ``hubert_pretrain_*`` return a training wrapper instead.
_ARCH_PREFIXES = ('wav2vec2_', 'hubert_', 'wavlm_')

# Weights an encoder does not use: the CTC head (``aux``) of fine-tuned
# models and HuBERT's pretraining label embeddings.
_HEAD_KEYS = re.compile(r'^(aux\.|label_embs_concat$)')

# fairseq keys when ``pos_conv`` weight norm is a torch parametrization
# (newer torch) instead of weight_g/weight_v, the names torchaudio's key map knows.
_FAIRSEQ_WEIGHT_NORM = {'parametrizations.weight.original0': 'weight_g',
                        'parametrizations.weight.original1': 'weight_v'}


def _build_arch(arch: Union[str, dict]) -> torch.nn.Module:
    """A torchaudio ``Wav2Vec2Model`` from a factory name or model kwargs."""
    models = require('torchaudio', 'Wav2Vec2Encoder').models
    if isinstance(arch, str):
        names = sorted(n for n in models.__all__
                       if n.startswith(_ARCH_PREFIXES) and 'pretrain' not in n
                       and n not in ('wav2vec2_model', 'wavlm_model'))
        if arch not in names:
            raise ValueError(f'Wav2Vec2Encoder: unknown arch {arch!r}; torchaudio factories: '
                             f'{names}, or a dict of torchaudio.models.wav2vec2_model kwargs')
        return getattr(models, arch)()
    if isinstance(arch, dict):
        kwargs = dict(arch)
        kwargs.setdefault('aux_num_out', None)
        # WavLM's relative position buckets are the only kwargs it adds.
        factory = models.wavlm_model if 'encoder_num_buckets' in kwargs else models.wav2vec2_model
        try:
            return factory(**kwargs)
        except TypeError as e:
            raise TypeError(f'Wav2Vec2Encoder: arch dict does not fit '
                            f'torchaudio.models.{factory.__name__}: {e}') from e
    raise TypeError(f'Wav2Vec2Encoder: arch must be a str or dict, got {type(arch).__name__}')


def _import_hf_folder(folder: str) -> torch.nn.Module:
    """A transformers wav2vec2/HuBERT/WavLM folder -> torchaudio ``Wav2Vec2Model``."""
    transformers = require('transformers', 'Wav2Vec2Encoder(checkpoint=<HF folder>)')
    from torchaudio.models.wav2vec2.utils import import_huggingface_model
    try:
        # AutoModel gives the bare encoder also for *ForCTC folders (the head is skipped).
        original = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(f'cannot load a transformers model from folder {folder}: {e}') from e
    if type(original).__name__ not in ('Wav2Vec2Model', 'HubertModel', 'WavLMModel'):
        raise ValueError(f'{folder} holds a transformers {type(original).__name__}; expected a '
                         'Wav2Vec2Model, HubertModel or WavLMModel checkpoint')
    return import_huggingface_model(original.eval())


def _is_torchaudio_layout(state_dict: Dict[str, Tensor]) -> bool:
    return 'encoder.feature_projection.projection.weight' in state_dict


def _fairseq_to_torchaudio(state_dict: Dict[str, Tensor], path: str) -> Dict[str, Tensor]:
    """Rename fairseq wav2vec2/HuBERT keys with torchaudio's own key map."""
    from torchaudio.models.wav2vec2.utils.import_fairseq import _map_key
    converted = {}
    for key, value in state_dict.items():
        # Fine-tuned checkpoints nest the encoder as ``w2v_encoder.w2v_model``.
        if key.startswith('w2v_encoder.'):
            key = key[len('w2v_encoder.'):]
        for old, new in _FAIRSEQ_WEIGHT_NORM.items():
            key = key.replace(old, new)
        try:
            new_key = _map_key(key)
        except ValueError as e:
            raise ValueError(f'{path}: key {key!r} is neither a torchaudio nor a fairseq '
                             'wav2vec2/HuBERT key (not such a checkpoint, or set `prefix`?)') from e
        if new_key is not None:  # None: pretraining-only (quantizer, mask_emb, ...)
            converted[new_key] = value
    return converted


@MODELS.register_module()
class Wav2Vec2Encoder(BaseEncoder):
    """wav2vec 2.0 / HuBERT / WavLM speech encoder through torchaudio.

    Args:
        arch: a torchaudio factory name (``'wav2vec2_base'``,
            ``'wav2vec2_large'``, ``'wav2vec2_large_lv60k'``,
            ``'wav2vec2_xlsr_300m'``, ``'hubert_base'``, ``'hubert_large'``,
            ``'wavlm_base'``, ...) or a dict of
            ``torchaudio.models.wav2vec2_model`` kwargs (``wavlm_model`` when
            it has ``encoder_num_buckets``), e.g. a tiny config. Ignored when
            ``checkpoint`` is a transformers folder (its config.json wins).
        checkpoint: the weights, any of
            - a torchaudio state dict file (``.pth``, e.g. a
              ``torchaudio.pipelines`` bundle's weights) or ``.safetensors``;
            - a fairseq checkpoint (``.pt`` with ``model`` and ``cfg``/``args``,
              pretrained or fine-tuned), keys renamed with torchaudio's fairseq
              key map (``import_fairseq``); it is read with weights-only
              unpickling, allowing ``argparse.Namespace`` (older ``args``);
            - a transformers folder (``Wav2Vec2Model``/``HubertModel``/
              ``WavLMModel`` or ``*ForCTC``), converted with torchaudio's
              ``import_huggingface_model``;
            - an mmfusion/mmengine checkpoint with ``prefix``.
            CTC heads are dropped: this is an encoder.
        prefix: keep only keys starting with it (and strip it).
        num_layers: run only the first ``num_layers`` transformer layers
            (``last`` is then the output of layer ``num_layers``, without the
            final layer norm of pre-norm archs unless it is the last layer).
        **kwargs: freezing options of :class:`BaseEncoder` (``frozen``,
            ``trainable_modules``, ``lora``, ``frozen_dtype``, ``init_cfg``).

    Padding: valid frames of a padded batch equal the utterance computed
    alone only for archs whose conv feature extractor uses per-frame layer
    norm (``extractor_mode='layer_norm'``: ``wav2vec2_large_lv60k``,
    ``wav2vec2_xlsr_*``, ``hubert_large``/``xlarge``). The
    ``group_norm`` archs (``wav2vec2_base``/``large``, ``hubert_base``,
    ``wavlm_base``) normalise the first conv layer over all time steps,
    padding included, exactly as the original models do. WavLM archs run
    only without ``lengths`` (torchaudio's WavLM takes no attention mask
    there).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'wav2vec2_base',
                 checkpoint: Optional[str] = None,
                 prefix: Optional[str] = None,
                 num_layers: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if checkpoint is not None and osp.isdir(checkpoint):
            self.model = _import_hf_folder(checkpoint)
        else:
            self.model = _build_arch(arch)
        self.model.aux = None
        depth = len(self.model.encoder.transformer.layers)
        if num_layers is not None and not 0 < num_layers <= depth:
            raise ValueError(f'Wav2Vec2Encoder: num_layers must be in [1, {depth}], '
                             f'got {num_layers}')
        self.num_layers = num_layers
        attention = self.model.encoder.transformer.layers[0].attention
        self._is_wavlm = type(attention).__name__ == 'WavLMSelfAttention'
        if checkpoint is not None and not osp.isdir(checkpoint):
            self.load_checkpoint(checkpoint, prefix)
        self._apply_freeze()

    def load_checkpoint(self, path: str, prefix: Optional[str] = None) -> None:
        """Load a torchaudio, fairseq or prefixed mmfusion weights file."""
        # Older fairseq checkpoints pickle their options as an argparse.Namespace.
        with torch.serialization.safe_globals([argparse.Namespace]):
            state_dict = load_state_dict_file(path)  # fairseq: {'model', 'cfg'/'args', ...}
        owner = type(self).__name__
        state_dict = select_prefix(state_dict, prefix, path, owner)
        if not _is_torchaudio_layout(state_dict):
            state_dict = _fairseq_to_torchaudio(state_dict, path)
        state_dict = {k: v for k, v in state_dict.items() if not _HEAD_KEYS.match(k)}
        load_strict(self.model, state_dict, path, owner, hint='check `arch` and `prefix`')

    @property
    def embed_dim(self) -> int:
        """Channels ``C`` of every output feature."""
        return self.model.encoder.transformer.layer_norm.normalized_shape[0]

    def forward(self, wave: Tensor,
                lengths: Optional[Tensor] = None) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """Encode a padded waveform batch.

        Args:
            wave: ``(B, T)`` waveforms (16 kHz for the released models).
            lengths: ``(B,)`` valid samples; ``None``: all ``T`` are valid.

        Returns:
            dict with
            - ``feats``: list of ``(B, frames, C)``, the output of each
              transformer layer (torchaudio's ``extract_features``);
            - ``last``: ``(B, frames, C)``, the encoder output: the last
              layer, plus the final layer norm in pre-norm archs
              (``encoder_layer_norm_first=True``), i.e. transformers'
              ``last_hidden_state``;
            - ``lengths``: ``(B,)`` long, valid frames;
            - ``padding_mask``: ``(B, frames)`` bool, True at padded frames.
        """
        if wave.dim() != 2:
            raise ValueError('Wav2Vec2Encoder expects waveforms (B, T), '
                             f'got shape {tuple(wave.shape)}')
        if lengths is not None:
            if self._is_wavlm:
                raise NotImplementedError(
                    "Wav2Vec2Encoder: torchaudio's WavLM layers take no attention mask in "
                    'extract_features, so padded batches (lengths) are not supported; encode '
                    'equal-length audio with lengths=None')
            lengths = lengths.long()
        feats, out_lengths = self.model.extract_features(wave, lengths, self.num_layers)
        last = feats[-1]
        transformer = self.model.encoder.transformer
        # torchaudio's flag is inverted: False means "norm after the layers",
        # which extract_features leaves out.
        if len(feats) == len(transformer.layers) and not transformer.layer_norm_first:
            last = transformer.layer_norm(last)
        if out_lengths is None:
            out_lengths = full_lengths(last)
        return dict(feats=list(feats), last=last, lengths=out_lengths,
                    padding_mask=lengths_to_padding_mask(out_lengths, last.shape[1]))
