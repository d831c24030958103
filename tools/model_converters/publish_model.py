"""Turn a training checkpoint into a file to share (OpenMMLab's publish step).

    python tools/model_converters/publish_model.py IN_FILE OUT_FILE [--format pth|safetensors]

Keeps the weights (``state_dict``) and, for ``.pth``, a small ``meta``
(``dataset_meta``, the mmengine/mmfusion versions, where it came from); drops
the optimizer, the parameter schedulers, the message hub and everything else
training resumes from. The output is named ``{OUT_STEM}-{sha256[:8]}.{ext}``
(the hash of the written file, as OpenMMLab's model zoo names files) and is
written atomically. safetensors files hold the weights only (its format has no
place for nested metadata; ``meta`` goes to its string header).
"""
import argparse
import hashlib
import io
import json
import os
import os.path as osp
import sys
from typing import Dict, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

from mmfusion.utils.checkpoint import (AtomicLocalBackend, safe_torch_load,  # noqa: E402
                                       unwrap_state_dict)

KEPT_META = ('dataset_meta', 'mmengine_version', 'mmengine', 'seed', 'experiment_name',
             'converted_from')


def strip_checkpoint(ckpt: dict, source: str) -> Tuple[Dict[str, torch.Tensor], dict, list]:
    """(weights, kept meta, names of the dropped top-level entries)."""
    weights = unwrap_state_dict(ckpt, source)
    meta = {k: v for k, v in (ckpt.get('meta') or {}).items() if k in KEPT_META}
    meta['published_from'] = osp.basename(source)
    dropped = sorted(k for k in ckpt if k not in ('state_dict', 'meta')) \
        if isinstance(ckpt, dict) and 'state_dict' in ckpt else []
    return weights, meta, dropped


def serialise(weights: Dict[str, torch.Tensor], meta: dict, fmt: str) -> bytes:
    # Shared storage (tied weights) and non-contiguous views are written as
    # independent contiguous tensors, which both formats store faithfully.
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    if fmt == 'safetensors':
        from safetensors.torch import save
        return save(weights, metadata={'mmfusion_meta': json.dumps(meta, default=str)})
    buffer = io.BytesIO()
    torch.save(dict(state_dict=weights, meta=meta), buffer)
    return buffer.getvalue()


def publish(src: str, dst: str, fmt: str = 'pth') -> str:
    """Write the stripped checkpoint; return its final, hash-named path."""
    weights, meta, dropped = strip_checkpoint(safe_torch_load(src), src)
    payload = serialise(weights, meta, fmt)
    digest = hashlib.sha256(payload).hexdigest()[:8]
    stem = osp.splitext(dst)[0]
    final = f'{stem}-{digest}.{fmt}'
    AtomicLocalBackend().put(payload, final)
    print(f'kept {len(weights)} tensors, meta {sorted(meta)}; dropped {dropped or "nothing"}')
    print(f'wrote {final} ({len(payload) / 2 ** 20:.1f} MiB)')
    return final


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('in_file', help='checkpoint written by training (.pth)')
    parser.add_argument('out_file', help='output path; the hash is added to its stem')
    parser.add_argument('--format', choices=('pth', 'safetensors'), default='pth')
    args = parser.parse_args(argv)
    if not osp.isfile(args.in_file):
        raise SystemExit(f'publish_model: no such checkpoint: {args.in_file}')
    os.makedirs(osp.dirname(osp.abspath(args.out_file)), exist_ok=True)
    publish(args.in_file, args.out_file, args.format)


if __name__ == '__main__':
    main()
