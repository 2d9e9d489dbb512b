"""Parsing preprocessing strings such as "decode|resize(340)|flip_lr".

Each `|`-separated op is a Python call expression whose arguments are
literals; no code is evaluated.
"""

from __future__ import annotations

import ast
from typing import Any

OpSpec = tuple[str, tuple[Any, ...], dict[str, Any]]


def parse_pp_spec(spec: str) -> list[OpSpec]:
    ops = []
    for text in (t.strip() for t in spec.split("|")):
        if not text:
            continue
        try:
            node = ast.parse(text, mode="eval").body
        except SyntaxError as e:
            raise ValueError(f"preprocessing op {text!r} in {spec!r} is not "
                             f"'name' or 'name(args)': {e.msg}.") from None
        if isinstance(node, ast.Name):
            ops.append((node.id, (), {}))
            continue
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            raise ValueError(f"preprocessing op {text!r} in {spec!r} must be "
                             "'name' or 'name(args)'.")
        try:
            args = tuple(ast.literal_eval(a) for a in node.args)
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError:
            raise ValueError(f"preprocessing op {text!r}: arguments must be "
                             "literals (numbers, strings, tuples).") from None
        ops.append((node.func.id, args, kwargs))
    return ops
