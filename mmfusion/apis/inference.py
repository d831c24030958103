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
from mmfusion.utils import explain_unknown_type, register_all_modules

ImageType = Union[str, np.ndarray]

# Transforms that read annotations (or draw prompts from them); inference on a
# bare image has none.
ANNOTATION_LOADERS = ('LoadBinaryMask', 'LoadAnnotations', 'LoadPanopticAnnotations',
                      'LoadReferringMask', 'LoadPromptableAnnotations', 'GeneratePrompts',
                      'LoadMattingAnnotations')
# Used for a model built without a config: read the image, pack it.
DEFAULT_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackFusionInputs')]


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> BaseModel:
    """Build a model from a config file and load a checkpoint into it.

    The config is kept on ``model.cfg`` (for the test pipeline) and the
    checkpoint's ``dataset_meta`` (class names, palette) on ``model.dataset_meta``.
    """
    register_all_modules(init_default_scope=False)
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmfusion'))
    with explain_unknown_type():
        model = MODELS.build(cfg.model)
    model.cfg = cfg
    model.dataset_meta = {}
    load_weights(model, checkpoint)
    return model.to(device).eval()


def load_weights(model: BaseModel, checkpoint: Optional[str]) -> None:
    """Load ``checkpoint`` (if any) into ``model`` and keep its ``dataset_meta``
    on ``model.dataset_meta`` (left as is without a checkpoint)."""
    if checkpoint is None:
        if not hasattr(model, 'dataset_meta'):
            model.dataset_meta = {}
        return
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
    model.dataset_meta = ckpt.get('meta', {}).get('dataset_meta', {}) or {}


def load_image(spec: str) -> Union[str, np.ndarray]:
    """A file path as is, or ``skimage:NAME`` (an image bundled with
    scikit-image) as a BGR uint8 array."""
    if not spec.startswith('skimage:'):
        return spec
    from skimage import data
    name = spec.split(':', 1)[1]
    loader = getattr(data, name, None)
    if not callable(loader) or name.startswith('_'):
        raise ValueError(f'skimage.data has no image {name!r}; e.g. skimage:astronaut, '
                         'skimage:coffee, skimage:chelsea')
    img = np.asarray(loader())
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f'skimage.data.{name}() is not an 8-bit image')
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    return np.ascontiguousarray(img[..., 2::-1])  # RGB(A) -> BGR


def build_test_pipeline(cfg: Optional[Config]) -> Compose:
    """The config's test pipeline without annotation loaders (a bare
    load-and-pack pipeline when there is no config or no test dataloader)."""
    scope = cfg.get('default_scope', 'mmfusion') if cfg is not None else 'mmfusion'
    init_default_scope(scope)
    loader = cfg.get('test_dataloader') if cfg is not None else None
    pipeline = loader.dataset.pipeline if loader else DEFAULT_PIPELINE
    return Compose([t for t in pipeline if t['type'].split('.')[-1] not in ANNOTATION_LOADERS])


def prepare_inputs(images: Sequence[ImageType], pipeline: Compose) -> List[dict]:
    """Run image paths or BGR arrays through ``pipeline``: one packed
    ``{'inputs', 'data_samples'}`` dict per image."""
    packed = []
    for img in images:
        if isinstance(img, np.ndarray):
            # Skip file loading: the array is the image.
            results = dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], img_path=None)
            for t in pipeline.transforms:
                if type(t).__name__ != 'LoadImageFromFile':
                    results = t(results)
            packed.append(results)
        elif isinstance(img, (str, Path)):
            packed.append(pipeline(dict(img_path=str(img))))
        else:
            raise TypeError(f'an image must be a file path or a BGR numpy array, got '
                            f'{type(img).__name__}')
    return packed


@torch.no_grad()
def inference_model(model: BaseModel,
                    images: Union[ImageType, Sequence[ImageType]]
                    ) -> Union[FusionDataSample, List[FusionDataSample]]:
    """Run ``model`` on image paths or BGR arrays with the config's test pipeline."""
    single = isinstance(images, (str, Path, np.ndarray))
    images = [images] if single else list(images)
    batch = prepare_inputs(images, build_test_pipeline(getattr(model, 'cfg', None)))
    outputs = model.test_step(pseudo_collate(batch))
    return outputs[0] if single else outputs
