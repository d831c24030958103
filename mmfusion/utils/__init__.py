from .checkpoint import (ATOMIC_BACKEND, SAFE_GLOBALS, AtomicLocalBackend, UnsafeCheckpointError,
                         load_state_dict_file, safe_torch_load)
from .dependency import require
from .setup_env import explain_unknown_type, register_all_modules

__all__ = [
    'ATOMIC_BACKEND', 'SAFE_GLOBALS', 'AtomicLocalBackend', 'UnsafeCheckpointError',
    'load_state_dict_file', 'safe_torch_load', 'require', 'explain_unknown_type',
    'register_all_modules'
]
