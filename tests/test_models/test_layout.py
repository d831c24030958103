"""The layout of ``mmfusion/models``: one folder per model family on shared
parts, and each shared pattern written once."""
import ast
import importlib
import inspect
import os
import os.path as osp

import pytest

from mmfusion.models.common import CausalLMStack, FusionBaseModel

from tests.conftest import REPO

MODELS_DIR = osp.join(REPO, 'mmfusion', 'models')
FAMILIES = ('clip', 'frozenseg', 'gms', 'i2pmae', 'mmmamba', 'sam', 'semat', 'xdecoder',
            'zipper')
SHARED = ('common', 'layers', 'encoders', 'tokenizers', 'data_preprocessors')


def _modules(folder: str):
    """(path, dotted module name) of every .py file below ``folder``."""
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith('.py'):
                path = osp.join(root, name)
                rel = osp.relpath(path, REPO)[:-3].replace(os.sep, '.')
                yield path, rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def _imported_modules(path: str, module: str):
    """Absolute names of what ``path`` imports (relative imports resolved)."""
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith('__init__.py') else module.rsplit('.', 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                yield node.lineno, '.'.join(base + ([node.module] if node.module else []))
            else:
                yield node.lineno, node.module


def _folder_of(module: str):
    parts = module.split('.')
    if parts[:2] == ['mmfusion', 'models'] and len(parts) > 2:
        return parts[2]
    return None


def test_every_models_folder_is_a_family_or_shared():
    folders = {d for d in os.listdir(MODELS_DIR)
               if osp.isdir(osp.join(MODELS_DIR, d)) and d != '__pycache__'}
    assert folders == set(FAMILIES) | set(SHARED)


@pytest.mark.parametrize('family', FAMILIES)
def test_family_folder_exists_with_its_base_model(family):
    package = importlib.import_module(f'mmfusion.models.{family}')
    models = [obj for obj in vars(package).values()
              if inspect.isclass(obj) and issubclass(obj, FusionBaseModel)]
    assert models, f'mmfusion.models.{family} exports no FusionBaseModel'


def test_no_family_imports_another_and_shared_parts_import_no_family():
    offences = []
    for folder in FAMILIES + SHARED:
        for path, module in _modules(osp.join(MODELS_DIR, folder)):
            for line, target in _imported_modules(path, module):
                other = _folder_of(target)
                if other in FAMILIES and other != folder:
                    offences.append(f'{osp.relpath(path, REPO)}:{line} imports {target}')
    assert not offences, '\n'.join(offences)


def test_one_import_style_no_parent_relative_imports():
    """Within the package: absolute imports, except ``from .sibling`` in the same folder."""
    offences = []
    for path, _ in _modules(osp.join(REPO, 'mmfusion')):
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                offences.append(f'{osp.relpath(path, REPO)}:{node.lineno}')
    assert not offences, offences


def _functions_named(name: str):
    for path, module in _modules(MODELS_DIR):
        for node in ast.walk(ast.parse(open(path).read(), path)):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == name:
                        yield module, node.name, item


def test_the_forward_mode_switch_exists_once():
    owners = [(module, cls) for module, cls, fn in _functions_named('forward')
              if 'mode' in [a.arg for a in fn.args.args]]
    assert owners == [('mmfusion.models.common.base_model', 'FusionBaseModel')]


def test_every_registered_top_level_model_is_a_fusion_base_model():
    import mmengine.model

    from mmfusion.registry import MODELS
    models = {name: cls for name, cls in MODELS.module_dict.items()
              if inspect.isclass(cls) and issubclass(cls, mmengine.model.BaseModel)
              and not issubclass(cls, mmengine.model.BaseDataPreprocessor)}
    assert models and all(issubclass(c, FusionBaseModel) for c in models.values()), [
        n for n, c in models.items() if not issubclass(c, FusionBaseModel)]


def test_greedy_decoding_exists_once_and_serves_the_four_decoders():
    users = set()
    loops = []
    for path, module in _modules(MODELS_DIR):
        source = open(path).read()
        tree = ast.parse(source, path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'greedy_decode':
                users.add(module)
            # A decoding loop picks the next token by an argmax over the vocabulary
            # (the last dimension) inside a loop and appends it (SAM's interaction
            # loops pick among its three masks with argmax(1): not decoding).
            if isinstance(node, (ast.For, ast.While)) and 'argmax(-1)' in ast.unparse(node) \
                    and 'cat' in ast.unparse(node):
                loops.append(module)
    assert users == {'mmfusion.models.zipper.zipper', 'mmfusion.models.zipper.vocab_expansion',
                     'mmfusion.models.mmmamba.multimodal_causal_lm',
                     'mmfusion.models.xdecoder.xdecoder_head'}
    assert loops == ['mmfusion.models.common.generation']


def test_the_llama_stack_exists_once():
    from mmfusion.models.common import CausalDecoderTower
    from mmfusion.models.mmmamba import MultimodalCausalLM
    assert issubclass(CausalDecoderTower, CausalLMStack)
    assert issubclass(MultimodalCausalLM, CausalLMStack)
    builders = [(m, c) for m, c, _ in _functions_named('__init__')
                if 'RotaryEmbedding(' in inspect.getsource(
                    getattr(importlib.import_module(m), c).__init__)]
    assert builders == []  # only CausalLMStack.build_stack makes the stack
