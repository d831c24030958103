from .checkpoint import (
                         ATOMIC_BACKEND,
                         SAFE_GLOBALS,
                         STATE_DICT_CONTAINERS,
                         AtomicLocalBackend,
                         UnsafeCheckpointError,
                         load_state_dict_file,
                         load_strict,
                         read_weights,
                         register_checkpoint_io,
                         safe_torch_load,
                         select_prefix,
                         unwrap_state_dict,
)
from .dependency import require
from .setup_env import explain_unknown_type, register_all_modules

__all__ = [
    'ATOMIC_BACKEND', 'SAFE_GLOBALS', 'STATE_DICT_CONTAINERS', 'AtomicLocalBackend',
    'UnsafeCheckpointError', 'load_state_dict_file', 'load_strict', 'read_weights',
    'register_checkpoint_io', 'safe_torch_load',
    'select_prefix', 'unwrap_state_dict', 'require', 'explain_unknown_type',
    'register_all_modules'
]
