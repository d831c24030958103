from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from mmfusion.registry import MODELS
from mmfusion.structures import FusionDataSample
from mmfusion.utils import explain_unknown_type

# Transforms that read annotations; inference on a bare image has none.
ANNOTATION_LOADERS = ('LoadBinaryMask', 'LoadAnnotations')


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> BaseModel:
    """Build a model from a config file and load a checkpoint into it.

    The config is kept on ``model.cfg`` (for the test pipeline) and the
    checkpoint's ``dataset_meta`` (class names, palette) on ``model.dataset_meta``.
    """
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmfusion'))
    with explain_unknown_type():
        model = MODELS.build(cfg.model)
    dataset_meta = {}
    if checkpoint is not None:
        ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
        dataset_meta = ckpt.get('meta', {}).get('dataset_meta', {}) or {}
    model.cfg = cfg
    model.dataset_meta = dataset_meta
    return model.to(device).eval()


def _inference_pipeline(cfg: Config) -> Compose:
    pipeline = [t for t in cfg.test_dataloader.dataset.pipeline
                if t['type'].split('.')[-1] not in ANNOTATION_LOADERS]
    return Compose(pipeline)


@torch.no_grad()
def inference_model(model: BaseModel,
                    images: Union[str, np.ndarray, Sequence[Union[str, np.ndarray]]]
                    ) -> Union[FusionDataSample, List[FusionDataSample]]:
    """Run ``model`` on image paths or BGR arrays with the config's test pipeline."""
    single = isinstance(images, (str, np.ndarray))
    images = [images] if single else list(images)
    pipeline = _inference_pipeline(model.cfg)
    batch = []
    for img in images:
        if isinstance(img, np.ndarray):
            # Skip file loading: the array is the image.
            results = dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], img_path=None)
            transforms = [t for t in pipeline.transforms
                          if type(t).__name__ != 'LoadImageFromFile']
            for t in transforms:
                results = t(results)
            batch.append(results)
        else:
            batch.append(pipeline(dict(img_path=img)))
    outputs = model.test_step(pseudo_collate(batch))
    return outputs[0] if single else outputs
