"""The class hierarchy of the synthetic JFT-shaped dataset.

Four levels, as deep as the paper's hierarchy needs to be to make ancestor
fill-in matter: shape family > shape > shape+colour > shape+colour+texture.
Only leaves (shape+colour+texture) are drawn on images; the three upper levels
exist as labels so that a training label 'red striped triangle' implies
'red triangle', 'triangle' and 'polygon' (the paper's 'apple implies fruit').

Pure NumPy: worker processes that render images import this without
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

# Shape families and the shapes in each. Render functions live in render.py.
FAMILIES: dict[str, tuple[str, ...]] = {
    "polygon": tuple(f"polygon{n}" for n in range(3, 11)),
    "star": tuple(f"star{n}" for n in range(4, 10)),
    "round": ("circle", "ellipse", "ring", "halfdisc", "crescent"),
    "bar": ("bar", "plus", "ell", "tee", "aitch"),
}
SHAPES: tuple[str, ...] = tuple(s for shapes in FAMILIES.values() for s in shapes)
SHAPE_FAMILY: tuple[int, ...] = tuple(
    f for f, shapes in enumerate(FAMILIES.values()) for _ in shapes
)


@dataclasses.dataclass(frozen=True)
class Taxonomy:
    """Classes of the synthetic dataset; class id = index into `names`."""

    names: tuple[str, ...]
    # (child, parent) pairs over class ids: the hierarchy in its file form.
    parents: tuple[tuple[int, int], ...]
    # Per leaf (in leaf order): class id and the attributes that render it.
    leaf_ids: np.ndarray
    leaf_shape: np.ndarray
    leaf_colour: np.ndarray
    leaf_texture: np.ndarray
    num_colours: int
    num_textures: int
    # Per leaf, the leaf index of its 'tortoise-shell glasses': a leaf of
    # another shape family with the same colour and texture, which noisy
    # training labels confuse it with.
    lookalike: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def num_leaves(self) -> int:
        return len(self.leaf_ids)


def _dimensions(num_leaves: int) -> tuple[int, int, int]:
    """Shapes, colours, textures with shapes*colours*textures >= num_leaves."""
    num_shapes = int(np.clip(round(1.5 * num_leaves ** (1 / 3)), 4, len(SHAPES)))
    per_shape = math.ceil(num_leaves / num_shapes)
    num_colours = max(2, math.ceil(math.sqrt(per_shape)))
    num_textures = max(1, math.ceil(per_shape / num_colours))
    return num_shapes, num_colours, num_textures


def _pick_shapes(num_shapes: int) -> list[int]:
    """Take shapes round-robin over families so every family is represented."""
    by_family = [[s for s in range(len(SHAPES)) if SHAPE_FAMILY[s] == f]
                 for f in range(len(FAMILIES))]
    picked: list[int] = []
    depth = 0
    while len(picked) < num_shapes:
        for shapes in by_family:
            if depth < len(shapes) and len(picked) < num_shapes:
                picked.append(shapes[depth])
        depth += 1
    return sorted(picked)


def count_classes(num_leaves: int) -> int:
    """`build_taxonomy(num_leaves).num_classes`, without building it.

    The first shapes*colours leaves (texture-major order) each open a new
    shape+colour class; the first `num_shapes` of them each a new shape.
    """
    num_shapes, num_colours, _ = _dimensions(num_leaves)
    shapes = _pick_shapes(num_shapes)[:min(num_leaves, num_shapes)]
    families = {SHAPE_FAMILY[s] for s in shapes}
    return num_leaves + min(num_leaves, num_shapes * num_colours) + len(shapes) + len(families)


def leaves_for_classes(num_classes: int) -> int:
    """The most leaves whose hierarchy has exactly `num_classes` classes in all.

    JFT's 18,291 classes count every level, so a JFT-sized taxonomy is sized
    by its total, leaves plus their ancestors (18,291 classes: 17,591 leaves).
    """
    for num_leaves in range(num_classes, 3, -1):
        if count_classes(num_leaves) == num_classes:
            return num_leaves
    raise ValueError(f"no synthetic taxonomy has exactly {num_classes} classes; the "
                     f"smallest has {count_classes(4)}.")


def build_taxonomy(num_leaves: int) -> Taxonomy:
    """Builds the hierarchy with exactly `num_leaves` leaf classes."""
    if num_leaves < 4:
        raise ValueError(f"num_leaves={num_leaves}: the synthetic dataset needs "
                         "at least 4 leaf classes (one per shape family).")
    num_shapes, num_colours, num_textures = _dimensions(num_leaves)
    shapes = _pick_shapes(num_shapes)
    # Texture-major order: the first leaves give every (shape, colour) one
    # texture, so a partial last texture level leaves the tree balanced.
    combos = [(s, c, t) for t in range(num_textures) for c in range(num_colours)
              for s in shapes][:num_leaves]

    names: list[str] = []
    parents: list[tuple[int, int]] = []
    ids: dict[tuple, int] = {}

    def add(key: tuple, name: str, parent: tuple | None) -> int:
        if key not in ids:
            ids[key] = len(names)
            names.append(name)
            if parent is not None:
                parents.append((ids[key], ids[parent]))
        return ids[key]

    family_names = list(FAMILIES)
    # Upper levels first (breadth first), then the leaves.
    for s, _, _ in combos:
        add(("f", SHAPE_FAMILY[s]), family_names[SHAPE_FAMILY[s]], None)
    for s, _, _ in combos:
        add(("s", s), f"{family_names[SHAPE_FAMILY[s]]}/{SHAPES[s]}",
            ("f", SHAPE_FAMILY[s]))
    for s, c, _ in combos:
        add(("sc", s, c), f"{names[ids[('s', s)]]}/colour{c}", ("s", s))
    leaf_ids = [add(("l", s, c, t), f"{names[ids[('sc', s, c)]]}/texture{t}",
                    ("sc", s, c)) for s, c, t in combos]

    leaf_shape = np.array([s for s, _, _ in combos], np.int32)
    leaf_colour = np.array([c for _, c, _ in combos], np.int32)
    leaf_texture = np.array([t for _, _, t in combos], np.int32)
    return Taxonomy(
        names=tuple(names),
        parents=tuple(parents),
        leaf_ids=np.array(leaf_ids, np.int32),
        leaf_shape=leaf_shape,
        leaf_colour=leaf_colour,
        leaf_texture=leaf_texture,
        num_colours=num_colours,
        num_textures=num_textures,
        lookalike=_lookalikes(leaf_shape, leaf_colour, leaf_texture),
    )


def _lookalikes(shape: np.ndarray, colour: np.ndarray,
                texture: np.ndarray) -> np.ndarray:
    """For each leaf, a leaf of another family that shares colour and texture."""
    family = np.array(SHAPE_FAMILY)[shape]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(zip(colour.tolist(), texture.tolist())):
        groups.setdefault(key, []).append(i)
    out = np.empty(len(shape), np.int32)
    for i, key in enumerate(zip(colour.tolist(), texture.tolist())):
        candidates = [j for j in groups[key] if family[j] != family[i]]
        if not candidates:  # Tiny taxonomies: fall back to any other shape.
            candidates = np.flatnonzero(shape != shape[i]).tolist()
        # Deterministic choice that spreads confusions over the candidates.
        out[i] = candidates[i % len(candidates)]
    return out


# --- Semantic segmentation classes (the offline segmentation task). ---

SEMANTIC_LEVELS: dict[str, tuple[str, ...]] = {"family": tuple(FAMILIES), "shape": SHAPES}


def num_semantic_classes(level: str = "family") -> int:
    """Classes of the semantic label map at `level`: background + one per family
    (or shape). The same for every taxonomy size: configs set num_classes
    from it without building the dataset or importing TensorFlow."""
    return 1 + len(_level(level))


def semantic_classes(class_names: Sequence[str], level: str = "family") -> np.ndarray:
    """Per class id, its semantic class at `level`: 1 + the index of its family
    (or shape) in FAMILIES (SHAPES); 0 is the background.

    Read from the class names ('family/shape/colour/texture'), which every
    level of the hierarchy carries. A class above `level` (a family when
    level='shape') gets 255, the ignore label: objects are leaves, never it.
    """
    order = {n: i for i, n in enumerate(_level(level))}
    depth = 0 if level == "family" else 1
    out = np.zeros(len(class_names), np.int32)
    for c, name in enumerate(class_names):
        parts = str(name).split("/")
        if parts[0] not in FAMILIES or (len(parts) > depth and parts[depth] not in order):
            raise ValueError(f"class {c} {name!r} names no {level} of synthetic_jft; "
                             "semantic classes need synthetic_jft's class names.")
        out[c] = 1 + order[parts[depth]] if len(parts) > depth else 255
    return out


def classes_outside(class_names: Sequence[str], family: str) -> tuple[str, ...]:
    """The class names not in `family`'s subtree (the family, its shapes, colours
    and leaves): a class subset whose training never labels that family."""
    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: use one of {list(FAMILIES)}.")
    return tuple(n for n in class_names
                 if n != family and not str(n).startswith(f"{family}/"))


def _level(level: str) -> tuple[str, ...]:
    if level not in SEMANTIC_LEVELS:
        raise ValueError(f"level={level!r}: use one of {sorted(SEMANTIC_LEVELS)}.")
    return SEMANTIC_LEVELS[level]
