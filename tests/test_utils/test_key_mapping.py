import pytest
import torch

from mmfusion.utils.key_mapping import Rule, convert_keys


def test_rules_renames_transforms_drops_and_report():
    state = {'a.0.weight': torch.ones(2, 3), 'a.0.bias': torch.zeros(2), 'keep': torch.ones(1),
             'buf': torch.ones(1)}
    rules = [Rule(r'a\.(\d)\.weight', r'b.\1.w', transform=lambda t: t.t(), note='transposed'),
             Rule(r'a\.(\d)\.bias', r'b.\1.b'), Rule(r'keep', r'keep')]
    out, report = convert_keys(state, rules, drops=[(r'buf', 'a loss buffer')])
    assert out['b.0.w'].shape == (3, 2) and torch.equal(out['b.0.b'], state['a.0.bias'])
    assert report.kept == ['keep'] and report.renamed == [('a.0.bias', 'b.0.b')]
    assert report.transformed == [('a.0.weight', 'b.0.w', 'transposed')]
    assert report.dropped == [('buf', 'a loss buffer')]
    assert '1 kept, 1 renamed, 1 transformed, 1 dropped' in report.summary()
    with pytest.raises(KeyError, match='match no conversion rule'):
        convert_keys({'other': torch.ones(1)}, rules, source='x.pth')
    with pytest.raises(KeyError, match='both map to'):
        convert_keys({'a': torch.ones(1), 'b': torch.ones(1)}, [Rule(r'a|b', 'c')])
