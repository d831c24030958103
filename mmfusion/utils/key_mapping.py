"""Checkpoint key conversion shared by the official-weight converters
(``tools/model_converters/*``): ordered rename rules, optional per-tensor
transforms (transposes, splits, slices), drops, and a report of what happened
to every key."""
import argparse
import io
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmfusion.utils.checkpoint import AtomicLocalBackend, safe_torch_load

Transform = Callable[[Tensor], Tensor]


@dataclass
class Rule:
    """``pattern`` (a full-match regex on the source key) -> ``target`` (a
    ``re`` replacement, e.g. ``r'head.\\1'``), with an optional tensor
    ``transform`` and a ``note`` for the report."""
    pattern: str
    target: str
    transform: Optional[Transform] = None
    note: str = ''


@dataclass
class ConversionReport:
    """Every source key, by what happened to it."""
    kept: List[str] = field(default_factory=list)  # same name
    renamed: List[Tuple[str, str]] = field(default_factory=list)
    transformed: List[Tuple[str, str, str]] = field(default_factory=list)  # src, dst, note
    dropped: List[Tuple[str, str]] = field(default_factory=list)  # key, reason

    def summary(self) -> str:
        lines = [f'{len(self.kept)} kept, {len(self.renamed)} renamed, '
                 f'{len(self.transformed)} transformed, {len(self.dropped)} dropped']
        for src, dst, note in self.transformed:
            lines.append(f'  transformed {src} -> {dst}: {note}')
        reasons: Dict[str, int] = {}
        for _, why in self.dropped:
            reasons[why] = reasons.get(why, 0) + 1
        for why, count in reasons.items():
            lines.append(f'  dropped {count} keys: {why}')
        return '\n'.join(lines)


def convert_keys(state_dict: Dict[str, Tensor], rules: Sequence[Rule],
                 drops: Sequence[Tuple[str, str]] = (),
                 source: str = 'checkpoint') -> Tuple[Dict[str, Tensor], ConversionReport]:
    """Apply the first matching rule to every key.

    Args:
        state_dict: the source weights.
        rules: tried in order; the first whose pattern matches the whole key
            names the target (a key matched by no rule and no drop is an
            error: a converter must account for every key).
        drops: ``(pattern, reason)`` of keys left out on purpose.
        source: name for error messages.

    Returns:
        The converted state dict and the report.
    """
    compiled = [(re.compile(r.pattern), r) for r in rules]
    dropped = [(re.compile(p), why) for p, why in drops]
    out: Dict[str, Tensor] = {}
    report = ConversionReport()
    unknown = []
    for key, value in state_dict.items():
        reason = next((why for p, why in dropped if p.fullmatch(key)), None)
        if reason is not None:
            report.dropped.append((key, reason))
            continue
        for pattern, rule in compiled:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            target = match.expand(rule.target)
            if target in out:
                raise KeyError(f'{source}: {key} and another key both map to {target}')
            if rule.transform is not None:
                out[target] = rule.transform(value)
                report.transformed.append((key, target, rule.note))
            else:
                out[target] = value
                if target == key:
                    report.kept.append(key)
                else:
                    report.renamed.append((key, target))
            break
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f'{source}: {len(unknown)} keys match no conversion rule (is it the '
                       f'expected checkpoint?), e.g. {unknown[:5]}')
    return out, report


def converter_main(convert: Callable[[dict], Tuple[Dict[str, Tensor], ConversionReport]],
                   description: str, argv: Optional[Sequence[str]] = None) -> None:
    """The command line every ``tools/model_converters/*`` script shares:
    ``SRC DST``; reads SRC safely, converts, prints the report and writes an
    mmengine checkpoint (``state_dict`` + ``meta.converted_from``) atomically,
    so a failure leaves no half-written DST."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='mmfusion checkpoint to write')
    args = parser.parse_args(argv)
    state, report = convert(safe_torch_load(args.src))
    print(report.summary())
    buffer = io.BytesIO()
    torch.save(dict(state_dict=state, meta=dict(converted_from=osp.basename(args.src))), buffer)
    AtomicLocalBackend().put(buffer.getvalue(), args.dst)
    print(f'wrote {len(state)} tensors to {args.dst}')
