"""Turn a training checkpoint into a file to share (OpenMMLab's publish step).

    python tools/model_converters/publish_model.py IN_FILE OUT_FILE [--format pth|safetensors]
    python tools/model_converters/publish_model.py --index [PATTERN] [--out-dir DIR] [--format ...]

Keeps the weights (``state_dict``) and, for ``.pth``, a small ``meta``
(``dataset_meta``, the mmengine version, the seed, where it came from); drops
the optimizer, the parameter schedulers, the message hub and everything else
training resumes from. The output is named ``{OUT_STEM}-{sha256[:8]}.{ext}``
(the first 8 hex digits of the written file's SHA-256, as OpenMMLab's model zoo
names files) and is written atomically. safetensors files hold the weights
only; ``meta`` goes to their string header (``mmfusion_meta``, JSON), which
mmfusion's checkpoint loader reads back.

``--index`` publishes every model of the model index (``model-index.yml``;
those matching the shell-style PATTERN) whose ``Weights`` is a local
checkpoint that exists, as ``DIR/{name}-{sha256[:8]}.{ext}`` (default DIR
``work_dirs/published``, where ``get_model(name, pretrained=True)`` looks);
``make publish`` runs it.
"""
import argparse
import hashlib
import io
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

from mmfusion.utils.checkpoint import (  # noqa: E402
    STATE_DICT_CONTAINERS,
    AtomicLocalBackend,
    load_from_local,
    safe_torch_load,
    unwrap_state_dict,
)

#: The ``meta`` entries a published ``.pth`` keeps (what inference reads, and
#: provenance); the rest of a training checkpoint's ``meta`` (epoch, iter,
#: time, the dumped config, ...) is dropped.
KEPT_META = ('dataset_meta', 'mmengine_version', 'mmengine', 'seed', 'experiment_name',
             'converted_from')
FORMATS = ('pth', 'safetensors')


def load_training_checkpoint(src: str) -> dict:
    """The checkpoint as a dict, read safely: ``.safetensors`` through
    mmfusion's loader, anything else through :func:`safe_torch_load`."""
    if src.endswith('.safetensors'):
        return load_from_local(src, map_location='cpu')
    return safe_torch_load(src)


def strip_checkpoint(ckpt: dict, source: str) -> Tuple[Dict[str, torch.Tensor], dict, List[str]]:
    """``(weights, kept meta, dropped)``: the flat state dict, the kept
    ``meta`` entries plus ``published_from``, and the names of what was
    dropped (top-level entries, ``meta.<key>`` entries, non-tensor state)."""
    weights = unwrap_state_dict(ckpt, source)
    # the entry unwrap_state_dict took the weights from (none for a flat state dict)
    container = next((k for k in STATE_DICT_CONTAINERS
                      if isinstance(ckpt, dict) and isinstance(ckpt.get(k), dict)), None)
    dropped = sorted(k for k in ckpt if k not in (container, 'meta')) if container else []
    meta_in = (ckpt.get('meta') or {}) if container else {}
    meta = {k: v for k, v in meta_in.items() if k in KEPT_META}
    meta['published_from'] = osp.basename(source)
    dropped += [f'meta.{k}' for k in sorted(meta_in) if k not in KEPT_META]
    not_tensors = sorted(k for k, v in weights.items() if not isinstance(v, torch.Tensor))
    dropped += [f'state_dict.{k} (not a tensor)' for k in not_tensors]
    weights = {k: v for k, v in weights.items() if k not in not_tensors}
    return weights, meta, dropped


def serialise(weights: Dict[str, torch.Tensor], meta: dict, fmt: str) -> bytes:
    """The file's bytes. Tensors that share storage (tied weights) or are
    non-contiguous views are written as independent contiguous copies:
    safetensors refuses shared storage, and a .pth would otherwise store the
    whole underlying buffer of a view."""
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    if fmt == 'safetensors':
        from safetensors.torch import save
        return save(weights, metadata={'mmfusion_meta': json.dumps(meta, default=str)})
    buffer = io.BytesIO()
    torch.save(dict(state_dict=weights, meta=meta), buffer)
    return buffer.getvalue()


def publish(src: str, dst: str, fmt: str = 'pth') -> str:
    """Write ``src`` stripped to ``{dst stem}-{sha256[:8]}.{fmt}``; return that path."""
    if fmt not in FORMATS:
        raise ValueError(f'format must be one of {FORMATS}, got {fmt!r}')
    weights, meta, dropped = strip_checkpoint(load_training_checkpoint(src), src)
    payload = serialise(weights, meta, fmt)
    digest = hashlib.sha256(payload).hexdigest()[:8]
    stem, ext = osp.splitext(dst)
    if ext not in ('.pth', '.safetensors'):
        stem = dst
    final = f'{stem}-{digest}.{fmt}'
    AtomicLocalBackend().put(payload, final)
    print(f'{src}: kept {len(weights)} tensors' + (f' and meta {sorted(meta)}' if fmt == 'pth'
                                                   else ' (meta in the header)'))
    print(f'  removed: {", ".join(dropped) if dropped else "nothing"}')
    print(f'  wrote {final} ({len(payload) / 2 ** 20:.2f} MiB, sha256 {digest}...)')
    return final


def publish_index(pattern: Optional[str], out_dir: str, fmt: str = 'pth') -> List[str]:
    """Publish every indexed model (matching ``pattern``) whose ``Weights``
    is a local file that exists; return the written paths."""
    from mmfusion.apis.model_index import find_root, list_models, model_info
    root = find_root()
    written, missing = [], []
    for name in list_models(pattern):
        weights = model_info(name).get('Weights')
        if not weights or str(weights).startswith(('http://', 'https://')):
            continue
        path = weights if osp.isabs(weights) else osp.join(root, weights)
        if osp.isfile(path):
            written.append(publish(path, osp.join(out_dir, f'{name}.{fmt}'), fmt))
        else:
            missing.append(weights)
    if missing:
        print(f'not trained here (skipped): {len(missing)} checkpoints, e.g. {missing[:3]}')
    print(f'published {len(written)} model(s) to {out_dir}')
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('in_file', nargs='?', help='checkpoint written by training')
    parser.add_argument('out_file', nargs='?', help='output path; the hash is added to its stem')
    parser.add_argument('--format', choices=FORMATS, default='pth')
    parser.add_argument('--index', nargs='?', const='*', metavar='PATTERN',
                        help='publish the model index\'s local Weights (names matching '
                             'PATTERN, default all) instead of IN_FILE')
    parser.add_argument('--out-dir', default=None,
                        help='with --index: where to write (default: work_dirs/published '
                             'under the checkout)')
    args = parser.parse_args(argv)
    if args.index is not None:
        if args.in_file or args.out_file:
            parser.error('--index takes no IN_FILE / OUT_FILE')
        from mmfusion.apis.model_index import PUBLISHED_DIR, find_root
        publish_index(args.index, args.out_dir or osp.join(find_root(), PUBLISHED_DIR),
                      args.format)
        return
    if not (args.in_file and args.out_file):
        parser.error('IN_FILE and OUT_FILE are required (or --index)')
    if not osp.isfile(args.in_file):
        raise SystemExit(f'publish_model: no such checkpoint: {args.in_file}')
    os.makedirs(osp.dirname(osp.abspath(args.out_file)), exist_ok=True)
    publish(args.in_file, args.out_file, args.format)


if __name__ == '__main__':
    main()
