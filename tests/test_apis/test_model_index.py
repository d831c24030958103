"""The model index (root ``model-index.yml`` + every family's ``metafile.yml``):
the metafiles follow OpenMMLab's schema, every runnable config is listed (the
exclusion rule is below), ``Weights`` are what training writes, every listed
model builds through ``get_model``, weights load, and every metric of a
metafile is the number its README's tables give that model.

Exclusion rule: configs in a family's ``*_eval/`` folders (``synthshapes_eval``,
``real_photo_eval``, ``paper_eval``) are evaluation-only: each inherits a listed
config of its family (or the ``_base_/models`` file one is built from) and is
run with that model's checkpoint, so it has no entry of its own. Every other
config under ``configs/`` (but ``_base_`` and ``_examples_``, docs/new_model.md's
example, which docs/new_model.md's test trains) is listed, ``ablations/`` included.
"""
import glob
import json
import math
import os.path as osp
import re
from typing import Iterable, List, NamedTuple, Optional, Sequence

import pytest
import torch
import yaml
from mmengine.config import Config

from mmfusion.apis import get_model, list_models, load_model_index, model_config
from mmfusion.apis.model_index import resolve_weights

from tests.conftest import DATA, REPO, shrink_model_cfg

CONFIGS = osp.join(REPO, 'configs')
INDEX = load_model_index()
NAMES = sorted(INDEX)


def family_folders() -> List[str]:
    return sorted(d for d in glob.glob(osp.join(CONFIGS, '*')) if osp.isdir(d)
                  and osp.basename(d) not in ('_base_', '_examples_'))


def is_eval_only(path: str) -> bool:
    rel = osp.relpath(path, CONFIGS).split(osp.sep)
    return any(part.endswith('_eval') for part in rel[1:-1])


def runnable_configs() -> List[str]:
    return sorted(osp.normpath(p) for d in family_folders()
                  for p in glob.glob(osp.join(d, '**', '*.py'), recursive=True))


def base_paths(path: str) -> List[str]:
    """The ``_base_`` files a config names (relative to it)."""
    with open(path) as f:
        text = f.read()
    match = re.search(r'^_base_\s*=\s*(\[[^\]]*\]|[\'"][^\'"]+[\'"])', text, re.M)
    if not match:
        return []
    names = re.findall(r'[\'"]([^\'"]+)[\'"]', match.group(1))
    return [osp.normpath(osp.join(osp.dirname(path), n)) for n in names]


def chain(path: str) -> set:
    """The config and every file it inherits, transitively."""
    seen, todo = set(), [osp.normpath(path)]
    while todo:
        current = todo.pop()
        seen.add(current)
        todo += [b for b in base_paths(current) if b not in seen]
    return seen


# ---------------------------------------------------------------- the index


def test_root_index_imports_every_family_metafile():
    with open(osp.join(REPO, 'model-index.yml')) as f:
        imported = yaml.safe_load(f)['Import']
    assert sorted(imported) == [osp.relpath(osp.join(d, 'metafile.yml'), REPO)
                                for d in family_folders()]


def is_url(text) -> bool:
    return isinstance(text, str) and re.match(r'https?://\S+$', text) is not None


@pytest.mark.parametrize('family', [osp.basename(d) for d in family_folders()])
def test_metafile_follows_the_openmmlab_schema(family):
    """Collections: Name, Metadata, Paper {Title, URL}, Code, README; Models:
    Name (= config stem), In Collection, Config, Metadata, Results [Task,
    Dataset, Metrics], Weights."""
    path = osp.join(CONFIGS, family, 'metafile.yml')
    with open(path) as f:
        meta = yaml.safe_load(f)
    assert set(meta) == {'Collections', 'Models'}, path
    collections = set()
    for c in meta['Collections']:
        assert set(c) == {'Name', 'Metadata', 'Paper', 'Code', 'README'}, c.get('Name')
        assert isinstance(c['Metadata'], dict) and None not in c['Metadata'].values()
        assert set(c['Paper']) == {'Title', 'URL'} and is_url(c['Paper']['URL'])
        # the authors' code, or mmfusion's implementation where none was released
        assert is_url(c['Code']) or osp.isdir(osp.join(REPO, c['Code'])), c['Code']
        assert c['README'] == f'configs/{family}/README.md'
        assert osp.isfile(osp.join(REPO, c['README']))
        collections.add(c['Name'])
    for m in meta['Models']:
        name = m.get('Name')
        assert {'Name', 'In Collection', 'Config', 'Metadata', 'Weights'} <= set(m) <= {
            'Name', 'In Collection', 'Config', 'Metadata', 'Results', 'Weights',
            'Converted From'}, name
        assert m['In Collection'] in collections, name
        assert m['Config'].startswith(f'configs/{family}/'), name
        assert osp.basename(m['Config']) == f'{name}.py'
        assert osp.isfile(osp.join(REPO, m['Config'])), m['Config']
        assert isinstance(m['Metadata'], dict) and m['Metadata'], name
        # an unquoted comma in a flow mapping ({Role: a, b}) makes 'b' a key of no value
        assert None not in m['Metadata'].values(), (name, m['Metadata'])
        for result in m.get('Results') or []:
            assert set(result) == {'Task', 'Dataset', 'Metrics'}, name
            assert isinstance(result['Task'], str) and isinstance(result['Dataset'], str)
            assert result['Metrics'] and all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in result['Metrics'].values()), (name, result['Metrics'])
        if m['Weights'] is None:  # only for what nobody trains
            assert 'not trained' in str(m['Metadata'].get('Role')), name
        else:
            assert is_url(m['Weights']) or m['Weights'].startswith('work_dirs/'), name
        if 'Converted From' in m:
            assert set(m['Converted From']) <= {'Weights', 'Code'}
            assert all(is_url(v) for v in m['Converted From'].values())


def test_every_runnable_config_is_listed_and_every_listed_config_exists():
    listed = [osp.normpath(osp.join(REPO, m['Config'])) for m in INDEX.values()]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == [p for p in runnable_configs() if not is_eval_only(p)]
    for name, model in INDEX.items():
        assert osp.basename(model['Config']) == f'{name}.py'
        assert 'Weights' in model, name


def test_eval_only_configs_evaluate_a_listed_model():
    """The exclusion rule: each config in a ``*_eval/`` folder inherits a
    listed config of its family, or the model base one of them is built from."""
    listed = [osp.normpath(osp.join(REPO, m['Config'])) for m in INDEX.values()]
    eval_only = [p for p in runnable_configs() if is_eval_only(p)]
    assert eval_only
    for path in eval_only:
        family = [p for p in listed if p.startswith(osp.dirname(osp.dirname(path)) + osp.sep)]
        model_bases = {b for p in family for b in chain(p) if '/_base_/models/' in b}
        assert chain(path) & (set(family) | model_bases), \
            f'{osp.relpath(path, REPO)} inherits no listed config (nor its model base)'


def final_checkpoint(cfg: Config) -> str:
    """The last checkpoint ``tools/train.py`` writes for the config."""
    train_cfg = cfg.train_cfg
    if train_cfg.get('type', '').startswith('EpochBased') or 'max_epochs' in train_cfg:
        return f'epoch_{train_cfg.max_epochs}.pth'
    return f'iter_{train_cfg.max_iters}.pth'


def test_local_weights_are_the_checkpoint_training_writes():
    """A local ``Weights`` is ``work_dirs/{name}/`` + the last checkpoint of the
    config's schedule (what ``tools/train.py`` and the family's make target
    write), and the family has that make target."""
    with open(osp.join(REPO, 'Makefile')) as f:
        targets = set(re.findall(r'^([\w-]+):', f.read(), re.M))
    from mmfusion.apis.model_index import MAKE_TARGETS
    local = {n: m for n, m in INDEX.items() if m['Weights'] and not is_url(m['Weights'])}
    assert len(local) > 40
    for name, model in local.items():
        cfg = Config.fromfile(osp.join(REPO, model['Config']))
        assert cfg.get('work_dir') is None, name
        assert model['Weights'] == f'work_dirs/{name}/{final_checkpoint(cfg)}', name
        family = model['Config'].split('/')[1]
        assert MAKE_TARGETS.get(family, family) in targets, family
    assert 'publish' in targets


def test_list_models_and_unknown_names():
    assert list_models() == NAMES and len(NAMES) == len(INDEX)
    assert list_models('xdecoder_focalt*') == [n for n in NAMES if n.startswith('xdecoder_focalt')]
    assert list_models('*_synth-speech*') == sorted(
        n for n in NAMES if INDEX[n]['Config'].startswith('configs/zipper/'))
    assert list_models('no-such-model*') == []
    with pytest.raises(KeyError, match=r"did you mean \['mmmamba-teacher_tiny"):
        get_model('mmmamba-teacher')
    with pytest.raises(KeyError, match='did you mean.*sam_vit-tiny_1xb8-2600it_synthshapes'):
        get_model('sam_vit-tiny_1xb8-2600it_synthshape')
    with pytest.raises(KeyError, match='list_models'):
        get_model('qwertyuiop')


def test_the_index_is_found_from_any_directory(tmp_path, monkeypatch):
    """From the checkout the package lives in, whatever the current directory;
    $MMFUSION_ROOT names another checkout (an installed package's)."""
    from mmfusion.apis import find_root
    monkeypatch.delenv('MMFUSION_ROOT', raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_root() == REPO and list_models() == NAMES
    monkeypatch.setenv('MMFUSION_ROOT', str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r'no model-index.yml.*MMFUSION_ROOT'):
        list_models()


def test_pretrained_true_explains_what_to_fetch_or_train():
    with pytest.raises(FileNotFoundError, match='nothing is downloaded.*xdecoder_to_mmfusion'):
        get_model('xdecoder_focalt_8xb4-50e_coco-panoptic', pretrained=True)
    name = 'zipper_text-lm_tiny_1xb64-600it_synth-speech'
    if not osp.exists(osp.join(REPO, INDEX[name]['Weights'])):
        with pytest.raises(FileNotFoundError, match='nothing is downloaded.*make zipper'):
            resolve_weights(name)
    with pytest.raises(FileNotFoundError, match='names no weights'):
        resolve_weights('frozenseg_sam-vit-b-128_cache-benchmark_synthshapes')
    with pytest.raises(FileNotFoundError, match='is a URL and nothing is downloaded'):
        get_model(name, pretrained=INDEX['sam_vit-b_8xb2-90k_coco']['Weights'])


# ---------------------------------------------------------------- building

#: tests/data/state_dict_keys.json: every config's state-dict keys and shapes, as
#: tests/test_models/test_state_dict_keys.py builds it (conftest.shrink_model_cfg).
with open(osp.join(DATA, 'state_dict_keys.json')) as f:
    RECORDED = json.load(f)
#: Built at their real size by another test from the config get_model builds.
BUILT_ELSEWHERE = {
    'semat_sam-vit-l_8xb2-60k_coco-matting':
        'tests/test_models/test_semat/test_official_checkpoint.py (paper_model)',
}
LARGE = 20e6  # parameters


def recorded_params(name: str) -> Optional[float]:
    shapes = RECORDED.get(INDEX[name]['Config'])
    return None if shapes is None else sum(math.prod(s) for s in shapes.values())


@pytest.mark.parametrize('name', NAMES)
def test_get_model_builds_every_listed_model(name, fitted_units):
    """``get_model`` builds every listed model. The large ones (> 20M
    parameters) whose model config is exactly the one
    test_state_dict_keys.py (and test_configs.py) build are not built twice:
    here they only show get_model hands ``MODELS.build`` that same config."""
    cfg, dropped = model_config(name)
    assert all(d.startswith('model.') for d in dropped)
    shrunk = shrink_model_cfg(Config.fromfile(osp.join(REPO, INDEX[name]['Config'])),
                              fitted_units)
    same_as_recorded = cfg.model.to_dict() == shrunk.to_dict()
    params = recorded_params(name)
    if name in BUILT_ELSEWHERE:
        paper = Config.fromfile(osp.join(REPO, INDEX[name]['Config'])).model
        paper.sam_checkpoint = None
        assert cfg.model.to_dict() == paper.to_dict(), BUILT_ELSEWHERE[name]
        return
    if same_as_recorded and params is not None and params > LARGE:
        return  # built by test_state_dict_keys.py from this very config
    torch.manual_seed(0)
    model = get_model(name)
    assert isinstance(model, torch.nn.Module) and not model.training
    assert model.cfg.model.to_dict() == cfg.model.to_dict()
    if same_as_recorded and params is not None:
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert shapes == RECORDED[INDEX[name]['Config']]


def test_large_models_are_built_by_the_state_dict_test():
    """The models test_get_model_builds_every_listed_model skips are the
    config test_state_dict_keys.py parametrises over."""
    from tests.test_configs import CONFIGS as BUILT
    for name in NAMES:
        params = recorded_params(name)
        if params is not None and params > LARGE:
            assert osp.join(REPO, INDEX[name]['Config']) in BUILT, name


TINY = 'mmmamba-teacher_tiny_1xb32-1500it_synthshapes-caption'


def test_get_model_loads_pretrained_weights(tmp_path):
    torch.manual_seed(1)
    trained = get_model(TINY)
    path = tmp_path / 'iter_1500.pth'
    torch.save(dict(state_dict=trained.state_dict(), meta=dict(dataset_meta=dict(x=1)),
                    optimizer=dict()), path)
    torch.manual_seed(2)
    fresh = get_model(TINY)
    assert any(not torch.equal(fresh.state_dict()[k], v)
               for k, v in trained.state_dict().items())
    loaded = get_model(TINY, pretrained=str(path))
    assert loaded.state_dict().keys() == trained.state_dict().keys()
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.dataset_meta == dict(x=1) and not loaded.training
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        get_model(TINY, pretrained=str(tmp_path / 'missing.pth'))


def test_get_model_merges_cfg_options():
    model = get_model(TINY, cfg_options={'model.depth': 2})
    assert model.cfg.model.depth == 2
    assert {k.split('.')[1] for k in model.state_dict() if k.startswith('layers.')} == {'0', '1'}


# ---------------------------------------------------------------- metrics vs READMEs
#
# A metafile metric (model, metric, value) is found in its README when a table
# cell holds the value and
# * the cell names the metric: every word of the metric name is in the cell's
#   label (the column header, the row's cells before it and the cell's text just
#   before the number; a cell of several numbers under a label of as many parts,
#   '61.3 (82.7 / 63.9)' under 'PQ (SQ / RQ)', gets its own part), and the label
#   is not rather that of a more specific metric of the same model ('Top-1' does
#   not take the cell of 'Top-1 seen');
# * the cell names the model: its row and column header name the config (its stem,
#   or a `prefix_*` glob) and no other indexed model; else one of the model's
#   ALIASES (regexes on the row, the column header and the caption, all of which
#   must match) does; else, for a model without aliases, the table's caption (its
#   first header cell and the prose since the last heading or table) names it and
#   no other indexed model.

# A number; not the digits of a name such as R@1, AP50, BLEU-4 or top-1.
NUMBER = re.compile(r'(?<![\w.@/-])\d+(?:,\d{3})*(?:\.\d+)?(?![\w@])')
SEPARATOR = re.compile(r'^\s*\|(\s*:?-+:?\s*\|)+\s*$')
HEADING = re.compile(r'^\s*#')
GLOB = re.compile(r'`([\w.-]+?)_\*`')
# How a label of several metrics splits into one part per number of a cell:
# 'PQ (SQ / RQ)', 'image→text R@1 / R@5, text→image R@1 / R@5'; then on '/' only
# ('NoC@85 / NoC@90 (of 20 clicks)').
PART_SPLITS = (re.compile(r'\s*[/(),;]\s*'), re.compile(r'\s*/\s*'))
SYNONYMS = {'novel': 'held-out', 'i2t': 'image→text', 't2i': 'text→image'}
GENERIC_WORDS = {'accuracy', 'overall'}

# Rows (or columns) that name a model in words rather than by its config.
ALIASES = {
    'clip_convnext-s8_1xb128-600it_synthshapes': [
        dict(row=r'^object and background crops \(the config\) \|')],
    'frozenseg_convnext-s8-sam-tiny_1xb8-5ep_synthshapes': [dict(row=r'^FrozenSeg tiny, full')],
    'frozenseg-no-feature-injector_convnext-s8-sam-tiny_1xb8-5ep_synthshapes': [
        dict(row=r'^first SAM: without the feature injector \|')],
    'frozenseg-no-query-injector_convnext-s8-sam-tiny_1xb8-5ep_synthshapes': [
        dict(row=r'^first SAM: without the query injector \|')],
    'frozenseg_convnext-l-sam-vit-b_8xb2-368k_coco-panoptic': [
        dict(row=r'^ADE20K \|', caption=r'ConvNeXt-L')],
    'frozenseg_convnext-l-sam-vit-b_zero-shot_ade20k-semantic': [
        dict(row=r'^ADE20K \|', caption=r'ConvNeXt-L')],
    'frozenseg_convnext-l-sam-vit-b_zero-shot_ade20k-panoptic': [
        dict(row=r'^ADE20K \|', caption=r'ConvNeXt-L')],
    'frozenseg_convnext-l-sam-vit-b_zero-shot_cityscapes-panoptic': [
        dict(row=r'^Cityscapes \|', caption=r'ConvNeXt-L')],
    'gms_sd2-vae_1xb8-1000e_busi': [dict(row=r'^BUSI \|', caption=r"The paper's numbers")],
    'clip_vit-tiny-depth_1xb96-400it_synthshapes3d': [
        dict(row=r'^bag of words \+ positions \(the recipe\), seed 0 \|'),
        dict(row=r'^the depth CLIP itself, one view \|')],
    'i2pmae_tiny_1xb32-300it_synthshapes3d': [dict(row=r'^I2P-MAE \(2D-guided\) \|')],
    'pointmae_tiny_1xb32-300it_synthshapes3d': [dict(row=r'^Point-MAE \(no 2D guidance\) \|')],
    'zeroshot_i2pmae-tiny_1xb32-300it_synthshapes3d': [
        dict(row=r'^point encoder aligned to the depth CLIP \|')],
    'clip_convnext-s8-depth_1xb128-600it_synthshapes3d': [
        dict(row=r'^the depth ConvNeXt CLIP, one view \|')],
    'zeroshot_i2pmae-tiny-convnext-clip_1xb32-300it_synthshapes3d': [
        dict(row=r'^the point encoder aligned to it \|', caption=r'^ConvNeXt teacher')],
    'i2pmae_1xb64-300e_shapenet55': [dict(row=r'^ModelNet40 linear SVM \|', column=r'^paper')],
    'mmmamba-teacher_tiny_1xb32-1500it_synthshapes-caption': [
        dict(row=r'^teacher \(attention\) \|')],
    'sam_vit-tiny_1xb8-2600it_synthshapes': [dict(column=r'^seed 0$')],
    'semat_sam-tiny_1xb8-1200it_synthmatte': [dict(row=r'^SEMat \(tiny\) \|')],
    'semat_sam-tiny_1xb8-600it_synthmatte_full': [dict(row=r'^full \(seed 0\) \|')],
    'semat_sam-tiny_1xb8-600it_synthmatte_no-lora': [dict(row=r'^without LoRA ')],
    'semat_sam-tiny_1xb8-600it_synthmatte_no-trimap-loss': [
        dict(row=r'^without the trimap loss \|')],
    'semat_sam-tiny_1xb8-600it_synthmatte_no-reg-loss': [
        dict(row=r'^without the regularisation loss \|')],
    'semat_sam-tiny_1xb8-600it_synthmatte_official-lr': [
        dict(row=r'^the official optimizer \(AdamW 5e-5')],
    'xdecoder_r18-tiny_2xb8-2300it_synthshapes': [
        dict(column=r'^tiny X-Decoder \(iter_2300\.pth\)$')],
    'xdecoder_focalt_8xb4-50e_coco-panoptic': [
        dict(row=r'\| COCO (val2017|Karpathy test) \|', column=r'^Focal-T$')],
    'xdecoder_focalt_zero-shot_ade20k-semantic': [
        dict(row=r'^zero-shot semantic \| ADE20K-150 \|', column=r'^Focal-T$')],
    'xdecoder_focalt_zero-shot_ade20k-panoptic': [
        dict(row=r'^zero-shot panoptic \| ADE20K \|', column=r'^Focal-T$')],
    'xdecoder_focalt_refcocog-umd-val': [
        dict(row=r'\| RefCOCOg UMD val \|', column=r'^Focal-T$')],
    'zipper_text-lm_tiny_1xb64-600it_synth-speech': [dict(row=r'^text tower, character LM \|')],
    'zipper_speech-lm_tiny_1xb16-600it_synth-speech': [dict(row=r'^speech tower, unit LM \|')],
    'zipper_asr_tiny_1xb16-1500it_synth-speech': [
        dict(row=r'^Zipper ASR as the paper \(')],
    'zipper_tts-rope_tiny_1xb16-1500it_synth-speech': [
        dict(row=r'^TTS units', caption=r'zipper_tts_roundtrip')],
}
_MMMAMBA_ROWS = {'linear': r'mmMamba-linear, official losses',
                 'hybrid': r'mmMamba-hybrid, official \(attention in layers 0 and 3\)',
                 'linear-ours': r'mmMamba-linear, ours',
                 'hybrid-ours': r'mmMamba-hybrid, ours \(attention in layers 2 and 5\)'}
for _stage, _iters in ((1, 300), (2, 300), (3, 600)):
    for _student, _row in _MMMAMBA_ROWS.items():
        ALIASES[f'mmmamba-{_student}_stage{_stage}_tiny_1xb32-{_iters}it_synthshapes-caption'] = [
            dict(row=rf'^{_row} \| stage {_stage} \|')]


class Cell(NamedTuple):
    """A number in a README table and the text that says what it is."""
    value: float
    line: int
    label: str    # what names the metric (see above)
    row: str      # the whole row (a continuation row gets the label of the row above)
    column: str   # the column header
    caption: str  # the first header cell and the prose since the last heading or table


def clean(text: str) -> str:
    """Without markdown emphasis and code marks."""
    return text.replace('`', '').replace('*', '').strip()


def split_row(line: str) -> List[str]:
    return [c.strip() for c in line.strip().strip('|').split('|')]


def label_parts(label: str, count: int) -> Optional[List[str]]:
    """``label`` split into ``count`` metric names, or None. Parts starting
    with a digit are steps of one metric ('WER at 500 / 1,000 / 1,500 it')."""
    for split in PART_SPLITS:
        parts = [p for p in split.split(clean(label)) if p]
        if len(parts) == count:
            return None if any(p[0].isdigit() for p in parts) else parts
    return None


def row_cells(row: List[str], header: List[str], line: int, caption: str) -> Iterable[Cell]:
    for c, text in enumerate(row):
        column = header[c] if c < len(header) else ''
        numbers = list(NUMBER.finditer(text))
        source, parts = None, None  # the label of several metrics the numbers follow
        if len(numbers) > 1:
            for i, candidate in [(-1, column)] + [(j, row[j]) for j in range(c - 1, -1, -1)]:
                parts = label_parts(candidate, len(numbers)) if '/' in candidate else None
                if parts:
                    source = i
                    break
        start = 0
        for k, m in enumerate(numbers):
            inline = text[start:m.start()]
            start = m.end()
            if parts:
                label = [parts[k], row[0] if source != 0 else '',
                         column if source != -1 else '', inline]
            else:
                label = [column] + row[:c] + [inline]
            yield Cell(float(m.group().replace(',', '')), line, ' | '.join(label),
                       ' | '.join(row), column, caption)


def table_cells(path: str) -> List[Cell]:
    """Every number in the markdown tables of the file at ``path``."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    cells, prose, i = [], [], 0
    while i < len(lines):
        if (lines[i].lstrip().startswith('|') and i + 1 < len(lines)
                and SEPARATOR.match(lines[i + 1])):
            header = split_row(lines[i])
            caption = ' '.join([header[0]] + prose)
            label, k = '', i + 2
            while k < len(lines) and lines[k].lstrip().startswith('|'):
                row = split_row(lines[k])
                if row[0]:
                    label = row[0]
                elif label:  # a continuation row: '| | stage 2 | ...'
                    row = [label] + row[1:]
                cells += row_cells(row, header, k + 1, caption)
                k += 1
            prose, i = [], k
            continue
        if HEADING.match(lines[i]):
            prose = []
        prose.append(lines[i])
        i += 1
    return cells


def metric_words(metric: str) -> set:
    return {w for w in re.findall(r'[^\s,;:()|]+', metric.lower()) if w not in GENERIC_WORDS}


def has_word(word: str, text: str) -> bool:
    return any(re.search(r'(?<!\w)' + re.escape(w) + r'(?!\w)', text)
               for w in {word, SYNONYMS.get(word, word)})


def names_metric(metric: str, cell: Cell, others: Sequence[str] = ()) -> bool:
    label = clean(cell.label).lower()
    own = metric_words(metric)
    if not all(has_word(w, label) for w in own):
        return False
    return not any(metric_words(o) > own and all(has_word(w, label) for w in metric_words(o))
                   for o in others)


def named_models(text: str) -> set:
    prefixes = GLOB.findall(text)
    text = clean(text)
    return {n for n in NAMES if re.search(re.escape(n) + r'(?![\w-])', text)
            or any(n.startswith(p + '_') for p in prefixes)}


def names_model(name: str, cell: Cell) -> bool:
    if named_models(cell.row + ' | ' + cell.column) == {name}:
        return True
    if name in ALIASES:
        fields = dict(row=clean(cell.row), column=clean(cell.column), caption=clean(cell.caption))
        return any(all(re.search(rx, fields[k]) for k, rx in alias.items())
                   for alias in ALIASES[name])
    return named_models(cell.caption) == {name}


class Metric(NamedTuple):
    model: str
    metric: str
    value: float
    readme: str


def metafile_metrics(index=None) -> List[Metric]:
    index = index or INDEX
    return [Metric(name, metric, float(value), osp.join(REPO, m['Collection']['README']))
            for name, m in index.items() for result in m.get('Results') or []
            for metric, value in result['Metrics'].items()]


def metric_problems(metrics: Sequence[Metric], index=None) -> List[str]:
    """Each metric that no README table cell gives that model, with the cells
    that hold its value."""
    index = index or INDEX
    tables, problems = {}, []
    for m in metrics:
        cells = tables.setdefault(m.readme, table_cells(m.readme))
        others = [k for r in index[m.model].get('Results') or [] for k in r['Metrics']
                  if k != m.metric]
        same = [c for c in cells if c.value == m.value]
        if not any(names_metric(m.metric, c, others) and names_model(m.model, c) for c in same):
            where = '; '.join(f'line {c.line}: metric {names_metric(m.metric, c, others)}, '
                              f'model {names_model(m.model, c)}' for c in same[:3])
            problems.append(f'{m.model}: {m.metric} = {m.value:g} is in no table row of '
                            f'{osp.relpath(m.readme, REPO)} for that model and metric'
                            + (f' (cells with that value: {where})' if same else ''))
    return problems


def test_every_metafile_metric_is_its_readme_table_number():
    metrics = metafile_metrics()
    assert len(metrics) > 130
    problems = metric_problems(metrics)
    assert not problems, '\n'.join(problems)


def test_a_wrong_metric_is_caught(monkeypatch):
    """A changed value, another model's value, another metric's value, and the
    same value under a less specific metric name are all caught."""
    import copy
    index = copy.deepcopy(INDEX)
    monkeypatch.setitem(index['mmmamba-linear_stage3_tiny_1xb32-600it_synthshapes-caption']
                        ['Results'][0]['Metrics'], 'CIDEr', 315.8)  # README: 315.7
    # the hybrid student's CIDEr, which the README gives in another row
    monkeypatch.setitem(index['mmmamba-linear_stage2_tiny_1xb32-300it_synthshapes-caption']
                        ['Results'][0]['Metrics'], 'CIDEr', 321.6)
    monkeypatch.setitem(index['zipper_asr_tiny_1xb16-1500it_synth-speech']['Results'][0]['Metrics'],
                        'WER', 55.4)  # its CER
    monkeypatch.setitem(index['clip_vit-tiny_1xb128-1k_synthshapes']['Results'][0]['Metrics'],
                        'Top-1', 0.971)  # its top-1 on the seen classes only
    metrics = metafile_metrics(index)
    problems = metric_problems(metrics, index)
    assert len(problems) == 4, problems
    for expected in ('mmmamba-linear_stage3_tiny_1xb32-600it_synthshapes-caption: CIDEr = 315.8',
                     'mmmamba-linear_stage2_tiny_1xb32-300it_synthshapes-caption: CIDEr = 321.6',
                     'zipper_asr_tiny_1xb16-1500it_synth-speech: WER = 55.4',
                     'clip_vit-tiny_1xb128-1k_synthshapes: Top-1 = 0.971'):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_readme_table_parsing(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('## Results\n\n`a_tiny_cfg.py`, trained here:\n\n'
                      '| model | BLEU-4 / CIDEr | PQ (SQ / RQ) |\n|---|---|---|\n'
                      '| **ours** | 61.4 / **329.1** | 59.1 (87.3 / 66.6) |\n'
                      '| | 1,500 it | held-out voices: WER **8.5**, CER 7.1 |\n')
    cells = {c.value: c for c in table_cells(str(readme))}
    assert set(cells) == {61.4, 329.1, 59.1, 87.3, 66.6, 1500, 8.5, 7.1}
    assert names_metric('CIDEr', cells[329.1]) and not names_metric('BLEU-4', cells[329.1])
    assert names_metric('SQ', cells[87.3]) and not names_metric('PQ', cells[87.3])
    assert names_metric('CER', cells[7.1]) and not names_metric('WER', cells[7.1])
    assert cells[8.5].row.startswith('**ours** |')  # the continuation row's label
    assert 'a_tiny_cfg.py' in cells[61.4].caption
