"""Open-vocabulary evaluation on another dataset's label space: the model
classifies among that dataset's class names."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmfusion.registry import HOOKS


@HOOKS.register_module()
class DatasetClassNamesHook(Hook):
    """Before validation / testing, set the model's ``classes`` and
    ``thing_classes`` from the evaluated dataset's metainfo.

    A zero-shot config (e.g. a COCO-trained FrozenSeg evaluated on ADE20K)
    then needs no copy of the target dataset's names: the dataset reads them
    from its annotation files (``CocoPanopticCaptionDataset``) or its
    ``METAINFO`` (``ADE20KSemanticDataset``). Thing names are set when the
    metainfo has them, else cleared (every class then counts as a thing).
    """

    priority = 'LOW'

    def _apply(self, runner: Runner, loader) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        meta = loader.dataset.metainfo
        if not meta.get('classes'):
            raise ValueError('DatasetClassNamesHook: the evaluated dataset has no '
                             'metainfo["classes"]')
        model.classes = list(meta['classes'])
        things = meta.get('thing_classes')
        model.thing_classes = list(things) if things is not None else None
        runner.logger.info(f'DatasetClassNamesHook: {len(model.classes)} class names from '
                           f'{type(loader.dataset).__name__}')

    def before_val(self, runner: Runner) -> None:
        self._apply(runner, runner.val_dataloader)

    def before_test(self, runner: Runner) -> None:
        self._apply(runner, runner.test_dataloader)
