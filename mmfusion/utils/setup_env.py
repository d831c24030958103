import datetime
import difflib
import re
import warnings
from contextlib import contextmanager
from typing import Iterator, List

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """The one place where mmfusion sets itself up in mmengine: import every
    subpackage so its modules are registered, route mmengine's local
    checkpoint loading through the safe loader and register the atomic
    checkpoint backend (:func:`mmfusion.utils.checkpoint.register_checkpoint_io`),
    and optionally make ``mmfusion`` the default scope.

    Call it before building a ``Runner`` or a model from a config; the tools,
    demos and ``mmfusion.apis.init_model`` do.
    """
    from mmfusion.utils.checkpoint import register_checkpoint_io
    register_checkpoint_io()
    import mmfusion.apis  # noqa: F401,F811
    import mmfusion.datasets  # noqa: F401,F811
    import mmfusion.engine  # noqa: F401,F811
    import mmfusion.evaluation  # noqa: F401,F811
    import mmfusion.models  # noqa: F401,F811
    import mmfusion.visualization  # noqa: F401,F811

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmfusion', scope_name='mmfusion')
    elif current.scope_name != 'mmfusion':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "mmfusion"; '
                      '`register_all_modules` makes a new default scope "mmfusion".')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S%f')
        DefaultScope.get_instance(f'mmfusion-{stamp}', scope_name='mmfusion')


class UnknownTypeError(KeyError):
    """A config ``type`` that no registry in scope knows."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


_NOT_IN_REGISTRY = re.compile(r"(\S+) is not in the (\S+)::(.+?) registry")


def _registered_names(scope: str, registry_name: str) -> List[str]:
    """Names visible from ``scope`` in the registry called ``registry_name``:
    its own, its parent's (mmengine root) and, with a prefix, its siblings'."""
    import mmengine.registry as root_registries
    root = next((r for r in vars(root_registries).values()
                 if isinstance(r, root_registries.Registry) and r.name == registry_name), None)
    if root is None:
        return []
    names = set(root.module_dict)
    for child_scope, child in root.children.items():
        prefix = '' if child_scope == scope else f'{child_scope}.'
        names.update(prefix + n for n in child.module_dict)
    return sorted(names)


@contextmanager
def explain_unknown_type() -> Iterator[None]:
    """Re-raise mmengine's "X is not in the registry" KeyError with the closest
    registered names, so a typo in a config ``type`` is a one-look fix.

    mmengine raises this error deep inside ``build_from_cfg`` of its *root*
    registries, which mmfusion does not own; the entry points (tools, APIs)
    wrap their builds in this context instead.
    """
    try:
        yield
    except KeyError as e:
        match = _NOT_IN_REGISTRY.search(str(e))
        if match is None:
            raise
        name, scope, registry_name = match.groups()
        name = name.strip('\'"')
        candidates = _registered_names(scope, registry_name)
        close = difflib.get_close_matches(name.split('.')[-1], candidates, n=5, cutoff=0.5)
        raise UnknownTypeError(f'unknown type {name!r} in the {registry_name!r} registry '
                               f'(scope {scope!r}); closest registered names: {close or "none"}'
                               ) from e
