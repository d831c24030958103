"""``torch.compile`` for the tools, the benchmark and the Inferencers.

``tools/train.py --compile`` sets mmengine's ``cfg.compile`` (a dict of
``torch.compile`` keyword arguments, ``True`` for the defaults). mmengine
0.10.7's ``Runner`` then compiles ``model.train_step`` only, once, inside
``Runner.train()`` (``Runner._maybe_compile``); ``Runner.val()``,
``Runner.test()`` and the validation loop inside ``train()`` call the eager
``val_step`` / ``test_step``. :class:`~mmfusion.engine.hooks.CompileHook`, which
:func:`enable_compile` adds, compiles those two with the same options when
their loop starts, and logs how long the first (compiling) iteration took
against the steady per-iteration time.

Parts of a model that cannot be compiled are excluded where they are defined,
with ``torch.compiler.disable`` (or a class attribute ``compile_exclude``
naming methods, wrapped by :func:`apply_compile_exclusions`), each with its
reason; graph breaks elsewhere are left to dynamo.

Raw Python values in a batch (the texts of ``inputs['text']``) are the other
hazard: dynamo guards every string that a traced frame holds when it breaks
its graph, so a new batch of texts recompiles those frames, and after
``torch._dynamo.config.recompile_limit`` (8) batches the whole step silently
runs eagerly. Under compilation the data preprocessor therefore hands them to
the model as a :class:`HostSequence`, which dynamo passes through without
looking inside; only excluded (eager) code reads the texts. Likewise a call
that breaks the graph (an excluded one) is kept out of the arguments of a
method call: the bound method left on the stack is a new object each batch,
and the resumed frame, guarded on it, recompiles every time.
"""
import argparse
import functools
import os
import shutil
from collections.abc import Sequence
from typing import Any, Iterable, Optional, Union

import torch
from torch import nn

#: ``torch.compile`` modes (``--compile-mode``)
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
CompileCfg = Union[bool, dict, None]


def compile_options(compile_cfg: CompileCfg) -> Optional[dict]:
    """``cfg.compile`` as ``torch.compile`` keyword arguments, read as
    mmengine reads it: ``None``/``False`` -> ``None`` (no compiling),
    ``True`` -> ``{}``, a dict -> a copy."""
    if compile_cfg is None or compile_cfg is False:
        return None
    if compile_cfg is True:
        return {}
    if not isinstance(compile_cfg, dict):
        raise TypeError(f'compile must be a bool or a dict of torch.compile options, '
                        f'got {type(compile_cfg).__name__}')
    return dict(compile_cfg)


def check_compiler(options: Optional[dict]) -> None:
    """Inductor (the default backend) generates C++ for the CPU (and host
    code next to its Triton kernels on CUDA) and builds it with the system
    compiler: fail before the first iteration, not inside it."""
    if options is None or options.get('backend', 'inductor') != 'inductor':
        return
    if os.environ.get('CXX') or any(shutil.which(c) for c in ('g++', 'c++', 'clang++')):
        return
    raise RuntimeError('torch.compile\'s inductor backend builds C++ and found no compiler '
                       '(g++, c++, clang++ or $CXX): install one (apt-get install g++), or '
                       'pass --compile-backend aot_eager (no code generation)')


def enable_compile(cfg, backend: Optional[str] = None, mode: Optional[str] = None) -> None:
    """Set ``cfg.compile`` (mmengine's switch; ``train()`` compiles
    ``train_step``) and add :class:`CompileHook` (compiled ``val_step`` /
    ``test_step``, compile time in the log), in place."""
    options = {}
    if backend:
        options['backend'] = backend
    if mode:
        if mode not in COMPILE_MODES:
            raise ValueError(f'compile mode must be one of {COMPILE_MODES}, got {mode!r}')
        options['mode'] = mode
    check_compiler(options)
    cfg.compile = options or True
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') in ('CompileHook', 'mmfusion.CompileHook') for h in hooks):
        hooks.append(dict(type='CompileHook'))
    cfg.custom_hooks = hooks


def add_compile_args(parser: argparse.ArgumentParser, step: str = 'train') -> None:
    """``--compile``, ``--compile-backend`` and ``--compile-mode`` (tools/train.py,
    tools/test.py; ``step``: what they compile, for the help text)."""
    what = {'train': "the train step (mmengine's cfg.compile) and the val steps",
            'test': 'the test step',
            'inference': "the model's inference (test_step / predict)"}[step]
    parser.add_argument('--compile', action='store_true',
                        help=f'torch.compile {what}; the first iterations compile (minutes on '
                        'CPU, which needs a C++ compiler), the log says how long')
    parser.add_argument('--compile-backend',
                        help='torch.compile backend (implies --compile; default inductor; '
                        'aot_eager / eager tell compiler problems from model problems)')
    parser.add_argument('--compile-mode', choices=COMPILE_MODES,
                        help='torch.compile mode (implies --compile)')


def compile_arg(args: argparse.Namespace) -> Union[bool, dict]:
    """The Inferencers' ``compile`` argument from :func:`add_compile_args`'
    flags: ``False``, ``True`` or ``torch.compile`` options."""
    if not (args.compile or args.compile_backend or args.compile_mode):
        return False
    options = {k: v for k, v in (('backend', args.compile_backend), ('mode', args.compile_mode))
               if v}
    check_compiler(options)
    return options or True


def apply_compile_args(cfg, args: argparse.Namespace) -> None:
    """:func:`enable_compile` when the arguments of :func:`add_compile_args` ask for it."""
    if args.compile or args.compile_backend or args.compile_mode:
        enable_compile(cfg, args.compile_backend, args.compile_mode)


class HostSequence(Sequence):
    """A read-only sequence of host-side Python values (e.g. the texts of a
    batch) that ``torch.compile`` treats as an opaque object: traced frames
    pass it on, guarded on its type only, and eager (excluded) code reads it
    like a list. ``len`` is traced (guarded on the batch size)."""

    __slots__ = ('_items', )

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = list(items)

    def __getitem__(self, index):
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other) -> bool:
        if isinstance(other, HostSequence):
            other = other._items
        return isinstance(other, (list, tuple)) and self._items == list(other)

    def __repr__(self) -> str:
        return f'HostSequence({self._items!r})'


def prepare_for_compile(model: nn.Module) -> list:
    """Before compiling ``model``: the exclusions of
    :func:`apply_compile_exclusions`, and every submodule with an
    ``opaque_host_inputs`` switch (the data preprocessor) turned on, so raw
    Python inputs arrive as :class:`HostSequence`. Returns the exclusions."""
    for module in model.modules():
        if hasattr(module, 'opaque_host_inputs'):
            module.opaque_host_inputs = True
    return apply_compile_exclusions(model)


def exclude_optimizer_step(optim_wrapper) -> int:
    """Run ``update_params`` (backward, gradient clipping, optimizer step)
    of ``optim_wrapper`` (or of each wrapper of an ``OptimWrapperDict``)
    outside dynamo. Returns how many wrappers it changed.

    Why: inside a compiled ``train_step`` the optimizer step is specialised
    on the learning rate (a Python float the scheduler changes every
    iteration) and gradient clipping logs the norm as a Python float to the
    message hub, so both recompile; PyTorch's foreach/fused optimizers are
    fused already. The backward still runs the compiled backward graphs."""
    wrappers = optim_wrapper.values() if hasattr(optim_wrapper, 'optim_wrappers') \
        else [optim_wrapper]
    changed = 0
    for wrapper in wrappers:
        fn = getattr(wrapper, 'update_params', None)
        if callable(fn) and not getattr(fn, '_mmfusion_compile_excluded', False):
            disabled = torch.compiler.disable(fn)
            disabled._mmfusion_compile_excluded = True
            wrapper.update_params = disabled
            changed += 1
    return changed


def is_compiled(fn) -> bool:
    """Whether ``fn`` is already a ``torch.compile`` wrapper."""
    return hasattr(fn, '_torchdynamo_orig_callable')


def compile_method(obj, name: str, options: Optional[dict] = None) -> bool:
    """Replace ``obj.name`` by ``torch.compile(obj.name, **options)`` on the
    instance, as mmengine does for ``train_step``. Nothing happens when the
    method is missing or already compiled. Returns whether it compiled."""
    fn = getattr(obj, name, None)
    if not callable(fn) or is_compiled(fn):
        return False
    setattr(obj, name, torch.compile(fn, **(options or {})))
    return True


def apply_compile_exclusions(model: nn.Module) -> list:
    """Wrap, on each submodule instance, the methods its class lists in
    ``compile_exclude`` with ``torch.compiler.disable``, and those it lists
    in ``compile_exclude_without_grad`` with a wrapper that runs them
    eagerly when autograd is off (inference) and traced otherwise (for
    methods whose definition cannot carry the decorator, e.g. in files or
    libraries that must not change). Returns the wrapped
    ``'module.path.method'`` names."""
    wrapped = []
    for path, module in model.named_modules():
        for attr, wrap in (('compile_exclude', torch.compiler.disable),
                           ('compile_exclude_without_grad', _eager_without_grad)):
            for name in _exclusions(type(module), attr):
                fn = getattr(module, name, None)
                if callable(fn) and not getattr(fn, '_mmfusion_compile_excluded', False):
                    wrapper = wrap(fn)
                    wrapper._mmfusion_compile_excluded = True
                    setattr(module, name, wrapper)
                    wrapped.append(f'{path}.{name}' if path else name)
    return wrapped


def _eager_without_grad(fn):
    disabled = torch.compiler.disable(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return (fn if torch.is_grad_enabled() else disabled)(*args, **kwargs)
    return wrapper


def _exclusions(cls, attr: str) -> Iterable[str]:
    names = []
    for klass in cls.__mro__:
        for name in klass.__dict__.get(attr, ()):
            if name not in names:
                names.append(name)
    return names


#: the model methods an Inferencer calls for a prediction
INFERENCE_METHODS = ('test_step', 'predict')


def compile_inference(model: nn.Module, compile_cfg: CompileCfg = True) -> nn.Module:
    """Compile the inference entry points of ``model`` in place
    (``test_step``, and ``predict``, which some Inferencers call directly)
    with ``compile_cfg`` (``True`` or ``torch.compile`` options). Returns
    ``model``."""
    options = compile_options(compile_cfg)
    if options is None:
        return model
    check_compiler(options)
    prepare_for_compile(model)
    for name in INFERENCE_METHODS:
        compile_method(model, name, options)
    return model
