"""Label hierarchies: read, validate, and fill in ancestors (or descendants).

The paper fills in missing labels from a hand-designed hierarchy ('apple'
implies 'fruit'). A hierarchy here is a DAG over class ids: a class may have
several parents. Two file formats are read:

* pairs: one `child parent` per line (class names when `class_names` is given,
  else integer ids); `#` starts a comment.
* Open Images' hierarchy JSON: nested `{"LabelName": ..., "Subcategory": [...]}`;
  a root not among the classes (Open Images' 'Entity') is not a class.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence

import numpy as np

from big_vision_like import filesystem as fs


class HierarchyError(ValueError):
    """A hierarchy that cannot be used: a cycle, an unknown class, bad ids."""


@dataclasses.dataclass(frozen=True)
class LabelHierarchy:
    num_classes: int
    parents: tuple[tuple[int, ...], ...]  # per class id, its parent ids
    class_names: tuple[str, ...] | None = None

    @classmethod
    def from_pairs(cls, pairs: Iterable[Sequence[int]], num_classes: int,
                   class_names: Sequence[str] | None = None) -> LabelHierarchy:
        parents: list[set[int]] = [set() for _ in range(num_classes)]
        for child, parent in pairs:
            for role, c in (("child", child), ("parent", parent)):
                if not 0 <= int(c) < num_classes:
                    raise HierarchyError(
                        f"hierarchy: {role} id {c} in pair ({child}, {parent}) is "
                        f"out of range [0, {num_classes}); the hierarchy does not "
                        "match the dataset's classes.")
            if child == parent:
                raise HierarchyError(f"hierarchy: class {child} is its own parent.")
            parents[int(child)].add(int(parent))
        h = cls(num_classes, tuple(tuple(sorted(p)) for p in parents),
                tuple(class_names) if class_names is not None else None)
        h._check_acyclic()
        return h

    @classmethod
    def from_pairs_file(cls, path: str | os.PathLike, num_classes: int | None = None,
                        class_names: Sequence[str] | None = None) -> LabelHierarchy:
        index = {n: i for i, n in enumerate(class_names)} if class_names else None
        if num_classes is None:
            if class_names is None:
                raise ValueError("from_pairs_file: give num_classes or class_names.")
            num_classes = len(class_names)
        pairs = []
        with fs.open(os.fspath(path)) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split("#", 1)[0].split()
                if not fields:
                    continue
                if len(fields) != 2:
                    raise HierarchyError(
                        f"{path}:{lineno}: expected 'child parent', got {line.strip()!r}.")
                pairs.append(tuple(_resolve(tok, index, path, lineno) for tok in fields))
        return cls.from_pairs(pairs, num_classes, class_names)

    @classmethod
    def from_open_images_json(cls, path: str | os.PathLike,
                              class_names: Sequence[str]) -> LabelHierarchy:
        index = {n: i for i, n in enumerate(class_names)}
        with fs.open(os.fspath(path)) as f:
            root = json.load(f)
        pairs: list[tuple[int, int]] = []

        def visit(node: dict, parent: int | None, is_root: bool) -> None:
            name = node["LabelName"]
            if name in index:
                me: int | None = index[name]
            elif is_root:
                me = None
            else:
                raise HierarchyError(
                    f"{path}: label {name!r} (child of "
                    f"{class_names[parent] if parent is not None else 'the root'}) "
                    "is not among the dataset's classes; pass the full class list.")
            if me is not None and parent is not None:
                pairs.append((me, parent))
            for child in node.get("Subcategory", []):
                visit(child, me, False)

        visit(root, None, True)
        return cls.from_pairs(pairs, len(class_names), class_names)

    def _name(self, c: int) -> str:
        return f"{c} ({self.class_names[c]})" if self.class_names else str(c)

    def _check_acyclic(self) -> None:
        # Iterative three-colour DFS; a grey->grey edge closes a cycle.
        state = np.zeros(self.num_classes, np.int8)  # 0 new, 1 on stack, 2 done
        for start in range(self.num_classes):
            if state[start]:
                continue
            stack = [(start, iter(self.parents[start]))]
            state[start] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                elif state[nxt] == 1:
                    path = [n for n, _ in stack]
                    cycle = [*path[path.index(nxt):], nxt]
                    raise HierarchyError(
                        "hierarchy has a cycle: "
                        + " -> ".join(self._name(c) for c in cycle)
                        + " (each arrow points from a class to its parent); "
                        "remove one of these edges.")
                elif state[nxt] == 0:
                    state[nxt] = 1
                    stack.append((nxt, iter(self.parents[nxt])))

    def ancestors(self) -> list[np.ndarray]:
        """Per class: the sorted ids of itself and all its ancestors."""
        memo: list[np.ndarray | None] = [None] * self.num_classes
        for c in self._topological_order():  # parents before children
            own = [np.array([c])] + [memo[p] for p in self.parents[c]]
            memo[c] = np.unique(np.concatenate(own)).astype(np.int32)
        return memo  # type: ignore[return-value]

    def descendants(self) -> list[np.ndarray]:
        """Per class: the sorted ids of itself and all its descendants."""
        below: list[list[int]] = [[] for _ in range(self.num_classes)]
        for c, anc in enumerate(self.ancestors()):
            for a in anc:
                below[a].append(c)
        return [np.array(b, np.int32) for b in below]  # ascending: c runs in order

    def _topological_order(self) -> list[int]:
        order, seen = [], np.zeros(self.num_classes, bool)
        for start in range(self.num_classes):
            stack = [(start, False)]
            while stack:
                node, expanded = stack.pop()
                if expanded:
                    order.append(node)
                elif not seen[node]:
                    seen[node] = True
                    stack.append((node, True))
                    stack.extend((p, False) for p in self.parents[node] if not seen[p])
        return order

    def fill_ancestors(self, labels: Iterable[int]) -> np.ndarray:
        """Multi-hot float32 vector of `labels` and all their ancestors."""
        anc = self.ancestors()
        out = np.zeros(self.num_classes, np.float32)
        for c in labels:
            out[anc[c]] = 1.0
        return out


def _resolve(token: str, index: dict[str, int] | None, path, lineno: int) -> int:
    if index is None:
        try:
            return int(token)
        except ValueError:
            raise HierarchyError(
                f"{path}:{lineno}: {token!r} is not a class id; pass class_names "
                "to read a hierarchy written with names.") from None
    if token not in index:
        raise HierarchyError(f"{path}:{lineno}: unknown class {token!r}; it is not "
                             "among the dataset's class names.")
    return index[token]
