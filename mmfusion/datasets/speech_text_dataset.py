"""Paired speech/text manifests and plain text corpora."""
import json
import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from mmfusion.registry import DATASETS


@DATASETS.register_module()
class SpeechTextDataset(BaseDataset):
    """Utterances from a JSONL manifest: one ``{"audio": path, "text": str, ...}``
    per line (``tools/dataset_converters/generate_synth_speech.py`` writes
    them; other fields such as ``voice`` are kept). ``audio`` is relative to
    ``data_root`` unless absolute.

    Data info: ``audio_path``, ``text`` (the transcript), ``sample_id``, and
    the other manifest fields.

    Args:
        require_text (bool): Every line must have a non-empty ``text``
            (needed for ASR/TTS; unlabelled speech for speech-tower
            pretraining may set False).
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments
            (``ann_file``, ``data_root``, ``pipeline``, ``indices``...).
    """

    def __init__(self, require_text: bool = True, **kwargs) -> None:
        self.require_text = require_text
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'speech manifest {self.ann_file} not found')
        data_list = []
        with open(self.ann_file) as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f'{self.ann_file}:{line_no}'
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f'{where}: not a JSON object ({e})') from e
                if not item.get('audio'):
                    raise KeyError(f'{where}: no "audio" field (keys: {sorted(item)})')
                if self.require_text and not str(item.get('text', '')).strip():
                    raise KeyError(f'{where}: no "text" transcript')
                info = {k: v for k, v in item.items() if k != 'audio'}
                info['audio_path'] = osp.join(self.data_root, item['audio'])
                info.setdefault('text', '')
                info['sample_id'] = osp.splitext(item['audio'])[0]
                data_list.append(info)
        if not data_list:
            raise ValueError(f'speech manifest {self.ann_file} has no utterances')
        return data_list


@DATASETS.register_module()
class TextLineDataset(BaseDataset):
    """A text corpus, one sentence per line (empty lines skipped); data info
    ``text`` and ``sample_id`` (the line number)."""

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'text corpus {self.ann_file} not found')
        with open(self.ann_file) as f:
            data_list = [dict(text=line.strip(), sample_id=str(i))
                         for i, line in enumerate(f) if line.strip()]
        if not data_list:
            raise ValueError(f'text corpus {self.ann_file} has no sentences')
        return data_list
