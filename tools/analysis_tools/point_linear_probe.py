"""Linear-SVM probe of a frozen point-cloud encoder (the Point-MAE / I2P-MAE
protocol).

    python tools/analysis_tools/point_linear_probe.py CONFIG [CHECKPOINT] \\
        [--prefix h_encoder.] [--C 0.01 ...] [--cv K] [--random-init] [--out JSON]

1. Features: the config's model in eval mode, on CPU, under ``torch.no_grad``.
   When the model config has an ``encoder`` (``I2PMAE``,
   ``PointCloudClassifier``, ...), only that encoder is built and its
   ``pooled`` output is the feature: for ``I2PMAE`` that is its
   ``_forward`` (the unmasked encoder, max-pooled normalised top tokens: the
   official SVM feature), for a classifier the encoder's feature without the
   head. ``--feature model`` builds the whole model and uses its
   ``extract_feat`` (a classifier's head input) or ``_forward`` instead.
   Clouds go through the model's data preprocessor (evaluation mode:
   deterministic resampling).
2. Data: the test split is ``probe_dataloader.dataset`` (pre-training
   configs have no test loop), else ``test_dataloader``'s or
   ``val_dataloader``'s (``--data CONFIG`` takes all dataloaders from
   another config, e.g. the real meshes); the train split is ``train_dataloader.dataset``
   with its pipeline replaced by the test one, so no random augmentation
   runs (dataset wrappers such as ``RepeatDataset`` are unwrapped). Batch
   size and workers come from each dataloader config.
3. Classifiers: ``sklearn.svm.SVC(kernel='linear', C=...)`` on the raw
   features for every ``--C`` (official: 0.01 during pre-training, 0.0093
   for ``--test_svm modelnet40``), and a logistic regression on standardised
   features (``StandardScaler`` + ``LogisticRegression``), fitted on train,
   scored on test. ``--cv K`` instead scores stratified K-fold
   cross-validation on the test split alone (small real sets that have only
   a test split, e.g. meshes in ``<root>/<category>/test/*.off``).
   ``--shots K`` fits on K random train samples per class instead, averaged
   over ``--draws`` seeded subsets (the same subsets for every model).

Reported (table and ``--out`` JSON): overall accuracy, mean per-class
accuracy, per-class accuracy and, when the dataset's metainfo has
``held_out`` (class names), the accuracy on the seen and on the held-out
classes' samples. Checkpoints load into the encoder through its own
``load_checkpoint`` (official Point-MAE / I2P-MAE files as they are; for an
mmfusion checkpoint, ``--prefix`` defaults to ``h_encoder.`` or ``encoder.``,
whichever the file has). ``--random-init`` drops every weight file from the
config (the random-init baseline).
"""
import argparse
import copy
import importlib
import json
import os.path as osp
import sys
import time
from functools import partial
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from torch import nn

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmfusion.registry import DATASETS, FUNCTIONS, MODELS  # noqa: E402
from mmfusion.utils import register_all_modules  # noqa: E402
from mmfusion.utils.config_weights import drop_weight_files  # noqa: E402
from mmfusion.utils.dependency import require  # noqa: E402

# Where the test split comes from, in order (pre-training configs, which have no test
# loop, name theirs probe_dataloader), then the train split.
LOADER_KEYS = ('probe_dataloader', 'test_dataloader', 'val_dataloader', 'train_dataloader')
OFFICIAL_SVM_C = 0.01


# -- model ---------------------------------------------------------------------
def auto_prefix(path: str) -> Optional[str]:
    """``h_encoder.`` / ``encoder.`` for an mmengine checkpoint (``state_dict``
    at the top) of a model holding the encoder there; ``None`` otherwise
    (official and bare files: the encoders find their keys themselves)."""
    from mmfusion.utils.checkpoint import safe_torch_load
    if path.endswith('.safetensors'):
        return None
    obj = safe_torch_load(path)
    if not (isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict)):
        return None
    keys = list(obj['state_dict'])
    for prefix in ('h_encoder.', 'encoder.'):
        if any(k.startswith(prefix) for k in keys):
            return prefix
    return None


def build_feature_extractor(cfg: Config,
                            checkpoint: Optional[str] = None,
                            prefix: Optional[str] = None,
                            random_init: bool = False,
                            feature: str = 'auto') -> Tuple[nn.Module, Callable, str]:
    """The module, a ``inputs -> (B, C) features`` function and a description."""
    model_cfg = copy.deepcopy(cfg.model)
    if random_init:
        if checkpoint:
            raise ValueError('--random-init builds the encoder without weights; drop CHECKPOINT')
        drop_weight_files(model_cfg)
    encoder_only = feature == 'encoder' or (feature == 'auto' and isinstance(
        model_cfg.get('encoder'), dict))
    if encoder_only:
        if not isinstance(model_cfg.get('encoder'), dict):
            raise KeyError(f'--feature encoder: the model config ({model_cfg.get("type")}) has '
                           'no "encoder"')
        module = MODELS.build(model_cfg['encoder'])
        what = f'{model_cfg["encoder"]["type"]} (the encoder of {model_cfg["type"]}) pooled'
    else:
        model_cfg.pop('data_preprocessor', None)
        module = MODELS.build(model_cfg)
        what = f'{model_cfg["type"]}.' + ('extract_feat' if hasattr(module, 'extract_feat')
                                          else '_forward')
    if checkpoint:
        if prefix is None:
            prefix = auto_prefix(checkpoint)
        if encoder_only and hasattr(module, 'load_checkpoint'):
            module.load_checkpoint(checkpoint, prefix)
        else:
            from mmfusion.utils import load_state_dict_file, load_strict, select_prefix
            state = select_prefix(load_state_dict_file(checkpoint), prefix, checkpoint,
                                  type(module).__name__)
            load_strict(module, state, checkpoint, type(module).__name__)
        what += f' from {checkpoint}' + (f' (prefix {prefix})' if prefix else '')
    elif random_init:
        what += ', random init'
    module.requires_grad_(False)
    module.eval().cpu()

    def features(inputs: Dict) -> torch.Tensor:
        if encoder_only:
            out = module(inputs['points'], inputs.get('points_lengths'))
        elif hasattr(module, 'extract_feat'):
            out = module.extract_feat(inputs)
        else:
            out = module(inputs, mode='tensor')
        if isinstance(out, dict):
            out = out['pooled']
        return out.float().flatten(1)

    return module, features, what


def build_preprocessor(cfg: Config) -> nn.Module:
    pre = cfg.model.get('data_preprocessor') or dict(
        type='MultiModalDataPreprocessor', points=dict(type='PointDataPreprocessor'))
    return MODELS.build(copy.deepcopy(pre)).eval().cpu()


# -- data ----------------------------------------------------------------------
def _loader_cfg(cfg: Config, names: Sequence[str]):
    for name in names:
        loader = cfg.get(name)
        if loader and loader.get('dataset'):
            return name, loader
    raise KeyError(f'the config has none of {list(names)} with a dataset')


def with_pipeline(dataset_cfg: dict, pipeline: list) -> dict:
    """``dataset_cfg`` with ``pipeline``; wrappers (``dataset=``) are removed,
    concatenations (``datasets=``) get it in every part."""
    dataset_cfg = copy.deepcopy(dataset_cfg)
    while 'dataset' in dataset_cfg and 'pipeline' not in dataset_cfg:
        dataset_cfg = copy.deepcopy(dataset_cfg['dataset'])
    if 'datasets' in dataset_cfg:
        dataset_cfg['datasets'] = [with_pipeline(d, pipeline) for d in dataset_cfg['datasets']]
        return dataset_cfg
    dataset_cfg['pipeline'] = copy.deepcopy(pipeline)
    return dataset_cfg


def split_cfgs(cfg: Config, cv: bool) -> Dict[str, Tuple[dict, dict]]:
    """``{'train': (dataset cfg, loader cfg), 'test': ...}`` with the test pipeline."""
    _, test_loader = _loader_cfg(cfg, LOADER_KEYS[:3])
    test_ds = test_loader['dataset']
    pipeline = test_ds.get('pipeline')
    inner = test_ds
    while pipeline is None and isinstance(inner.get('dataset'), dict):
        inner = inner['dataset']
        pipeline = inner.get('pipeline')
    if pipeline is None:
        raise KeyError('the test dataset config has no pipeline')
    out = {}
    if not cv:
        _, train_loader = _loader_cfg(cfg, ('train_dataloader', ))
        out['train'] = (with_pipeline(train_loader['dataset'], pipeline), train_loader)
    out['test'] = (with_pipeline(test_ds, pipeline), test_loader)
    return out


def build_loader(dataset, loader_cfg: dict, batch_size: Optional[int],
                 workers: Optional[int]) -> torch.utils.data.DataLoader:
    from mmengine.dataset import pseudo_collate
    collate = loader_cfg.get('collate_fn')
    if isinstance(collate, dict):
        collate = copy.deepcopy(collate)
        collate = partial(FUNCTIONS.get(collate.pop('type')), **collate)
    num_workers = loader_cfg.get('num_workers', 0) if workers is None else workers
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size or loader_cfg.get('batch_size', 1), shuffle=False,
        num_workers=num_workers, collate_fn=collate or pseudo_collate)


@torch.no_grad()
def extract(loader, preprocessor: nn.Module, features: Callable, title: str
            ) -> Tuple[np.ndarray, np.ndarray]:
    from mmengine.utils import ProgressBar
    print(f'{title}: {len(loader.dataset)} samples')
    bar = ProgressBar(len(loader.dataset))
    feats, labels = [], []
    for batch in loader:
        data = preprocessor(batch, training=False)
        samples = data['data_samples']
        if not samples or any('gt_label' not in s for s in samples):
            raise KeyError('the probe needs data samples with gt_label (a classification '
                           'dataset packed by PackFusionInputs)')
        feats.append(features(data['inputs']).cpu().numpy())
        labels.extend(int(s.gt_label) for s in samples)
        for _ in samples:
            bar.update()
    print()
    return np.concatenate(feats).astype(np.float64), np.asarray(labels, dtype=np.int64)


# -- classifiers ---------------------------------------------------------------
def classifiers(cs: Sequence[float]) -> Dict[str, Callable]:
    """name -> factory of an unfitted sklearn estimator."""
    svm = require('sklearn.svm', 'point_linear_probe', 'scikit-learn')
    linear_model = require('sklearn.linear_model', 'point_linear_probe', 'scikit-learn')
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    out = {f'SVC linear C={c:g}': partial(svm.SVC, kernel='linear', C=c) for c in cs}
    out['LogisticRegression (standardised)'] = lambda: make_pipeline(
        StandardScaler(), linear_model.LogisticRegression(max_iter=5000))
    return out


def scores(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str],
           held_out: Sequence[str]) -> dict:
    per_class = {}
    for label, name in enumerate(classes):
        hit = y_true == label
        per_class[name] = float((y_pred[hit] == label).mean() * 100) if hit.any() else None
    present = [v for v in per_class.values() if v is not None]
    out = dict(accuracy=float((y_true == y_pred).mean() * 100),
               mean_class_accuracy=float(np.mean(present)) if present else None,
               per_class=per_class)
    if held_out:
        novel = np.isin(y_true, [classes.index(c) for c in held_out if c in classes])
        for key, mask in (('seen_accuracy', ~novel), ('held_out_accuracy', novel)):
            out[key] = float((y_true[mask] == y_pred[mask]).mean() * 100) if mask.any() else None
    return out


def few_shot_indices(y: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """``shots`` random samples of every class present in ``y`` (all when fewer)."""
    picked = [rng.permutation(np.flatnonzero(y == c))[:shots] for c in np.unique(y)]
    return np.sort(np.concatenate(picked))


def mean_scores(runs: Sequence[dict]) -> dict:
    """Average the scalar scores of several fits; ``*_std`` next to each."""
    out = {}
    for key, value in runs[0].items():
        if isinstance(value, float):
            vals = [r[key] for r in runs]
            out[key], out[f'{key}_std'] = float(np.mean(vals)), float(np.std(vals))
    out['draws'] = len(runs)
    return out


def probe(feats: Dict[str, Tuple[np.ndarray, np.ndarray]], cs: Sequence[float],
          classes: Sequence[str], held_out: Sequence[str], cv: Optional[int] = None,
          seed: int = 0, shots: Optional[int] = None, draws: int = 10) -> Dict[str, dict]:
    results = {}
    x_test, y_test = feats['test']
    for name, make in classifiers(cs).items():
        start = time.time()
        if shots:
            # Few-shot probe: the same `draws` seeded subsets for every classifier/model.
            x_train, y_train = feats['train']
            rng = np.random.default_rng(seed)
            runs = []
            for _ in range(draws):
                idx = few_shot_indices(y_train, shots, rng)
                pred = make().fit(x_train[idx], y_train[idx]).predict(x_test)
                runs.append(scores(y_test, pred, classes, held_out))
            results[name] = mean_scores(runs)
        else:
            if cv:
                from sklearn.model_selection import StratifiedKFold, cross_val_predict
                folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
                pred = cross_val_predict(make(), x_test, y_test, cv=folds)
            else:
                x_train, y_train = feats['train']
                pred = make().fit(x_train, y_train).predict(x_test)
            results[name] = scores(y_test, pred, classes, held_out)
        results[name]['seconds'] = round(time.time() - start, 3)
    return results


def table(results: Dict[str, dict], held_out: bool) -> str:
    head = ['classifier', 'acc', 'mean class acc'] + (['seen', 'held-out'] if held_out else [])
    rows = [head, ['---'] * len(head)]

    def fmt(v):
        return '-' if v is None else f'{v:.2f}'

    for name, r in results.items():
        row = [name, fmt(r['accuracy']), fmt(r['mean_class_accuracy'])]
        if held_out:
            row += [fmt(r.get('seen_accuracy')), fmt(r.get('held_out_accuracy'))]
        rows.append(row)
    return '\n'.join('| ' + ' | '.join(map(str, r)) + ' |' for r in rows)


def per_class_table(result: dict) -> str:
    rows = ['| class | acc |', '| --- | --- |']
    rows += [f'| {c} | {"-" if a is None else f"{a:.2f}"} |'
             for c, a in result['per_class'].items()]
    return '\n'.join(rows)


# -- main ----------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='weights for the encoder (optional)')
    parser.add_argument('--prefix', help='key prefix of the encoder in CHECKPOINT, e.g. '
                        'h_encoder. (default: found from an mmengine checkpoint)')
    parser.add_argument('--C', dest='cs', type=float, nargs='+', default=[OFFICIAL_SVM_C],
                        help='SVM C values (official 0.01)')
    parser.add_argument('--cv', type=int, help='stratified K-fold cross-validation on the test '
                        'split alone (no train split needed)')
    parser.add_argument('--random-init', action='store_true',
                        help='the encoder without any weight file (baseline)')
    parser.add_argument('--feature', choices=('auto', 'encoder', 'model'), default='auto',
                        help='auto/encoder: the encoder\'s pooled output; model: the whole '
                        'model\'s extract_feat / _forward')
    parser.add_argument('--batch-size', type=int, help='override the dataloaders\' batch size')
    parser.add_argument('--workers', type=int, help='override the dataloaders\' num_workers')
    parser.add_argument('--seed', type=int, default=0, help='seed of the CV folds and of torch')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--shots', type=int, default=None,
                        help='few-shot probe: fit on this many train samples per class')
    parser.add_argument('--draws', type=int, default=10,
                        help='random few-shot subsets averaged (seeded by --seed)')
    parser.add_argument('--data', metavar='CONFIG',
                        help='take the dataloaders from this config instead (e.g. '
                        'configs/_base_/datasets/cgal_meshes.py for the real meshes)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in tools/train.py')
    args = parser.parse_args(argv)
    if args.cv is not None and args.cv < 2:
        parser.error('--cv needs K >= 2')
    return args


def run(cfg: Config, args) -> dict:
    register_all_modules()
    try:  # the point-cloud datasets, when this checkout has them
        importlib.import_module('mmfusion.datasets.pointcloud_datasets')
    except ImportError:
        pass
    torch.manual_seed(args.seed)
    _, features, what = build_feature_extractor(cfg, args.checkpoint, args.prefix,
                                                args.random_init, args.feature)
    preprocessor = build_preprocessor(cfg)
    print(f'features: {what}')
    feats, datasets = {}, {}
    for split, (ds_cfg, loader_cfg) in split_cfgs(cfg, bool(args.cv)).items():
        datasets[split] = DATASETS.build(ds_cfg)
        loader = build_loader(datasets[split], loader_cfg, args.batch_size, args.workers)
        feats[split] = extract(loader, preprocessor, features, f'{split} split')
    meta = datasets['test'].metainfo
    classes = list(meta.get('classes') or [str(i) for i in range(int(feats['test'][1].max()) + 1)])
    held_out = list(meta.get('held_out') or [])
    if 'train' in feats:
        missing = sorted(set(classes) - {classes[i] for i in set(feats['train'][1].tolist())})
        if missing:
            print(f'note: {len(missing)} classes have no train sample, so no linear classifier '
                  f'can predict them: {missing}')
    results = probe(feats, args.cs, classes, held_out, args.cv, args.seed, args.shots,
                    args.draws)
    report = dict(
        config=getattr(cfg, 'filename', None), checkpoint=args.checkpoint,
        random_init=bool(args.random_init), features=what,
        feature_dim=int(feats['test'][0].shape[1]),
        protocol=f'{args.cv}-fold stratified CV on the test split' if args.cv
        else (f'{args.shots}-shot: fit on {args.shots} train samples per class, score on '
              f'test, mean of {args.draws} draws' if args.shots
              else 'fit on train, score on test'),
        num_train=int(len(feats['train'][1])) if 'train' in feats else None,
        num_test=int(len(feats['test'][1])), classes=classes, held_out=held_out,
        results=results)
    svms = {k: v for k, v in results.items() if k.startswith('SVC')}
    best = max(svms, key=lambda k: svms[k]['accuracy'])
    report['best'] = best
    print(f'\n{report["protocol"]}; {report["num_test"]} test samples'
          + (f', {report["num_train"]} train' if report['num_train'] is not None else '')
          + f'; {report["feature_dim"]}-d features\n')
    print(table(results, bool(held_out)))
    if 'per_class' in results[best]:
        print(f'\nper class ({best}):\n')
        print(per_class_table(results[best]))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
        print(f'\nwrote {args.out}')
    return report


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.data:
        data_cfg = Config.fromfile(args.data)
        for key in LOADER_KEYS:
            cfg[key] = data_cfg.get(key)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return run(cfg, args)


if __name__ == '__main__':
    main()
