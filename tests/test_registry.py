import mmengine.registry as root
import pytest

import mmfusion.registry as fusion
from mmfusion.utils import explain_unknown_type


def test_every_mmengine_root_registry_has_a_child():
    roots = {name: r for name, r in vars(root).items()
             if isinstance(r, root.Registry) and name.isupper() and r.parent is None}
    for name, parent in roots.items():
        child = getattr(fusion, name)
        assert child.parent is parent and child.scope == 'mmfusion', name
        assert child._locations and all(loc.startswith('mmfusion.') for loc in child._locations), name


def test_unknown_type_names_registry_scope_and_closest_names():
    with pytest.raises(KeyError) as err, explain_unknown_type():
        fusion.MODELS.build(dict(type='LatentMapingNet'))
    msg = str(err.value)
    assert "'model' registry" in msg and "scope 'mmfusion'" in msg
    assert 'LatentMappingNet' in msg


def test_sibling_scopes_are_reachable():
    loss = fusion.MODELS.build(dict(type='mmdet.DiceLoss'))
    assert type(loss).__module__.startswith('mmdet.')
