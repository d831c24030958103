from types import SimpleNamespace

import pytest
from mmengine.logging import MMLogger
from torch import nn

from mmfusion.engine.hooks import DatasetClassNamesHook


def _runner(metainfo):
    model = nn.Linear(1, 1)
    model.classes, model.thing_classes = ['person', 'sky'], ['person']
    loader = SimpleNamespace(dataset=SimpleNamespace(metainfo=metainfo))
    return SimpleNamespace(model=model, test_dataloader=loader, val_dataloader=loader,
                           logger=MMLogger.get_instance('test_dataset_classes_hook'))


def test_model_classifies_among_the_evaluated_datasets_names():
    runner = _runner(dict(classes=('wall', 'chair', 'cat'), thing_classes=('chair', 'cat')))
    DatasetClassNamesHook().before_test(runner)
    assert runner.model.classes == ['wall', 'chair', 'cat']
    assert runner.model.thing_classes == ['chair', 'cat']
    runner = _runner(dict(classes=('wall', 'floor')))  # a semantic dataset: no thing list
    DatasetClassNamesHook().before_val(runner)
    assert runner.model.classes == ['wall', 'floor'] and runner.model.thing_classes is None
    with pytest.raises(ValueError, match='no metainfo'):
        DatasetClassNamesHook().before_test(_runner(dict()))
