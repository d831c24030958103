"""The model index: every config is listed, every listed model builds through
get_model (or fails only for a weight file its config names), pretrained
weights load, and every metric in a metafile is in its folder's README tables."""
import glob
import os.path as osp
import re

import pytest
import torch
import yaml

from mmfusion.apis import get_model, list_models, load_model_index
from tests.conftest import REPO

CONFIGS = osp.join(REPO, 'configs')
NUMBER = re.compile(r'(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?')


def family_folders():
    return sorted(d for d in glob.glob(osp.join(CONFIGS, '*')) if osp.isdir(d)
                  and osp.basename(d) != '_base_')


def base_paths(path: str):
    """The ``_base_`` files a config names (relative to it)."""
    text = open(path).read()
    match = re.search(r'^_base_\s*=\s*(\[[^\]]*\]|[\'"][^\'"]+[\'"])', text, re.M)
    if not match:
        return []
    names = re.findall(r'[\'"]([^\'"]+)[\'"]', match.group(1))
    return [osp.normpath(osp.join(osp.dirname(path), n)) for n in names]


def test_every_config_folder_has_a_metafile_in_the_root_index():
    with open(osp.join(REPO, 'model-index.yml')) as f:
        imported = yaml.safe_load(f)['Import']
    assert sorted(imported) == sorted(osp.relpath(osp.join(d, 'metafile.yml'), REPO)
                                      for d in family_folders())


def test_every_top_level_config_is_listed_and_every_listed_config_exists():
    index = load_model_index()
    listed = {osp.normpath(osp.join(REPO, m['Config'])) for m in index.values()}
    top = {osp.normpath(p) for d in family_folders() for p in glob.glob(osp.join(d, '*.py'))}
    assert top == listed
    for name, model in index.items():
        assert osp.basename(model['Config']) == f'{name}.py'
        assert model['Weights'], name


def chain(path: str) -> set:
    """The config and every file it inherits, transitively."""
    seen, todo = set(), [osp.normpath(path)]
    while todo:
        current = todo.pop()
        seen.add(current)
        todo += [b for b in base_paths(current) if b not in seen]
    return seen


def test_configs_in_subfolders_evaluate_or_ablate_a_listed_config():
    """Configs under a family's subfolders (``*_eval/``, ``ablations/``...)
    are not listed: each inherits a listed config of its family, or the
    model base (``_base_/models/*``) one of them is built from."""
    listed = [osp.normpath(osp.join(REPO, m['Config'])) for m in load_model_index().values()]
    for d in family_folders():
        family = [p for p in listed if osp.dirname(p) == osp.normpath(d)]
        model_bases = {b for p in family for b in chain(p) if '/_base_/models/' in b}
        for path in glob.glob(osp.join(d, '*', '**', '*.py'), recursive=True):
            inherited = chain(path)
            assert inherited & (set(family) | model_bases), \
                f'{osp.relpath(path, REPO)} inherits no listed config (nor its model base)'


@pytest.mark.parametrize('name', list_models())
def test_get_model_builds_every_listed_model(name):
    """Built from its config; the only accepted failure is a weight file the
    config names that this machine does not have (make targets and official
    downloads provide them; tests/test_configs.py builds each with those
    files replaced by random weights)."""
    torch.manual_seed(0)
    try:
        model = get_model(name)
    except FileNotFoundError as e:
        missing = re.search(r"(?:not found: |No such file or directory: ')([^'\s]+)", str(e))
        assert missing, str(e)
        config_text = ''.join(open(p).read()
                              for p in chain(osp.join(REPO, load_model_index()[name]['Config'])))
        assert osp.basename(missing.group(1).rstrip("'")) in config_text, str(e)
        return
    assert isinstance(model, torch.nn.Module) and not model.training


def test_get_model_loads_pretrained_weights_and_explains_unknown_names(tmp_path):
    name = 'mmmamba-teacher_tiny_1xb32-1500it_synthshapes-caption'
    torch.manual_seed(1)
    trained = get_model(name)
    path = tmp_path / 'weights.pth'
    torch.save(dict(state_dict=trained.state_dict()), path)
    torch.manual_seed(2)
    loaded = get_model(name, pretrained=str(path))
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(KeyError, match='did you mean'):
        get_model('mmmamba-teacher_tiny')
    with pytest.raises(FileNotFoundError, match='nothing is downloaded'):
        get_model('xdecoder_focalt_8xb4-50e_coco-panoptic', pretrained=True)
    assert list_models('xdecoder_focalt*') == sorted(
        n for n in list_models() if n.startswith('xdecoder_focalt'))


def readme_table_numbers(path: str) -> set:
    """Every number in the markdown table rows of a README."""
    numbers = set()
    with open(path) as f:
        for line in f:
            if line.lstrip().startswith('|'):
                numbers.update(float(n.replace(',', '')) for n in NUMBER.findall(line))
    return numbers


def metafile_metrics():
    for model in load_model_index().values():
        readme = osp.join(REPO, model['Collection']['README'])
        for result in model.get('Results') or []:
            for metric, value in result['Metrics'].items():
                yield model['Name'], metric, float(value), readme


def metric_problems(entries) -> list:
    """The (model, metric, value, README) entries whose value is in no table
    row of that README."""
    tables, problems = {}, []
    for name, metric, value, readme in entries:
        numbers = tables.setdefault(readme, readme_table_numbers(readme))
        if value not in numbers:
            problems.append(f'{name}: {metric} = {value} is in no table of {readme}')
    return problems


def test_every_metafile_metric_is_in_its_readme_tables():
    entries = list(metafile_metrics())
    assert len(entries) > 100
    problems = metric_problems(entries)
    assert not problems, '\n'.join(problems)


def test_a_metric_that_differs_from_the_readme_is_caught():
    name, metric, value, readme = next(iter(metafile_metrics()))
    wrong = (name, metric, round(value + 0.37, 2), readme)
    assert metric_problems([wrong]) == [f'{name}: {metric} = {wrong[2]} is in no table of '
                                        f'{readme}']
