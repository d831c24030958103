import importlib
from types import ModuleType


def require(package: str, user: str, pip_name: str = '') -> ModuleType:
    """Import an optional dependency or fail with an actionable message."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise ImportError(f'{user} needs the `{package}` package: '
                          f'pip install {pip_name or package} (or run tools/install.sh)') from e
