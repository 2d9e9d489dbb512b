"""Collectives of a compiled train step, and the bytes each device sends
(and those inside loops, which run once per pass).

Compiles the step for a mesh on abstract inputs (fake CPU devices are
enough; nothing runs), reads the collectives from the optimised HLO and
counts the bytes one device sends per step with ring algorithms:

  all-reduce of S bytes          2 (g-1)/g S
  all-gather producing S bytes     (g-1)/g S
  reduce-scatter producing S       (g-1)   S
  all-to-all of S bytes            (g-1)/g S
  collective-permute of S bytes            S

where g is the size of the op's replica group.
"""

from __future__ import annotations

import collections
import re

import numpy as np

KINDS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_OP = re.compile(r"=\s*(?P<shape>\((?:[^()]|\([^()]*\))*\)|[a-z0-9]+\[[^\]]*\](?:\{[^}]*\})?)\s+"
                 r"(?P<kind>" + "|".join(KINDS) + r")(?:-start)?\(")
_ARRAY = re.compile(r"\b(pred|s8|u8|s16|u16|f16|bf16|s32|u32|f32|s64|u64|f64)\[([0-9,]*)\]")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
          "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8}


def _shape_bytes(shape: str) -> int:
    total = 0
    for dtype, dims in _ARRAY.findall(shape):
        total += _BYTES[dtype] * int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
    return total


def _group_size(line: str, num_devices: int) -> int:
    named = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", line)
    if named:  # replica_groups=mesh['axis_0'=8,'axis_1'=1] {'axis_0'}
        sizes = dict(re.findall(r"'([^']+)'=(\d+)", named.group(1)))
        return int(np.prod([int(sizes[a]) for a in re.findall(r"'([^']+)'", named.group(2))]))
    iota = re.search(r"replica_groups=\[(\d+),(\d+)\]<=", line)
    if iota:
        return int(iota.group(2))
    explicit = re.search(r"replica_groups=\{\{([0-9,]*)\}", line)
    if explicit:
        return len(explicit.group(1).split(","))
    pairs = re.search(r"source_target_pairs=", line)
    return 2 if pairs else num_devices  # empty replica_groups: all devices


def collectives(hlo_text: str, num_devices: int) -> dict[str, dict[str, float]]:
    """Per kind: count and bytes sent per device per step."""
    out: dict[str, dict[str, float]] = collections.defaultdict(
        lambda: {"count": 0, "bytes_sent": 0.0})
    for line in hlo_text.splitlines():
        m = _OP.search(line)
        if not m:
            continue
        kind, size = m.group("kind"), _shape_bytes(m.group("shape"))
        g = _group_size(line, num_devices)
        if g <= 1:
            continue
        sent = {"all-reduce": 2 * (g - 1) / g * size, "all-gather": (g - 1) / g * size,
                "reduce-scatter": (g - 1) * size, "all-to-all": (g - 1) / g * size,
                "collective-permute": size}[kind]
        out[kind]["count"] += 1
        out[kind]["bytes_sent"] += sent
    return dict(out)


_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$")
_LOOP = re.compile(r"\b(?:condition|body)=%?([\w.\-]+)")


def in_loops(hlo_text: str, num_devices: int) -> dict[str, int]:
    """Per kind: collectives inside while loops (their bodies, conditions and
    what those call), each counted once though it runs at every pass; a
    data-dependent loop over a sharded batch makes them tiny and many."""
    computations: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in hlo_text.splitlines():
        header = _HEADER.match(line)
        if header:
            lines = computations.setdefault(header.group(1), [])
        lines.append(line)
    refs = {name: set(re.findall(r"%?([\w.\-]+)", "\n".join(body[1:]))) & computations.keys()
            for name, body in computations.items()}
    todo = [m for body in computations.values() for m in _LOOP.findall("\n".join(body))]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen and name in computations:
            seen.add(name)
            todo.extend(refs[name])
    found = collectives("\n".join(line for name in seen for line in computations[name][1:]),
                        num_devices)
    return {kind: int(v["count"]) for kind, v in found.items()}
