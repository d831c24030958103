"""Pick one caption of a sample as its text input."""
import random

from mmcv.transforms import BaseTransform

from mmfusion.registry import TRANSFORMS


@TRANSFORMS.register_module()
class SampleCaption(BaseTransform):
    """``results['text'] = `` one of ``results[key]`` (a list of captions).

    Args:
        key: results key holding the captions.
        mode: ``'random'`` (Python's ``random``, seeded by mmengine; training)
            or ``'first'`` (deterministic; evaluation).
    """

    def __init__(self, key: str = 'captions', mode: str = 'random') -> None:
        if mode not in ('random', 'first'):
            raise ValueError(f"SampleCaption mode must be 'random' or 'first', got {mode!r}")
        self.key = key
        self.mode = mode

    def transform(self, results: dict) -> dict:
        captions = results.get(self.key)
        if not captions:
            where = results.get('sample_id', results.get('points_path', 'this sample'))
            raise KeyError(f'SampleCaption: {where} has no captions under {self.key!r}; '
                           f'keys: {sorted(results)}')
        results['text'] = random.choice(captions) if self.mode == 'random' else captions[0]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(key={self.key!r}, mode={self.mode!r})'
