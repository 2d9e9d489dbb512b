"""Preprocessing ops that only make sense for synthetic_jft: its leaf classes
seen as shape families (or shapes), for segmentation and detection targets.

Registered by the dataset (`sources.registry`: the synthetic_jft kind names
this module), so the generic op modules never import its taxonomy.
"""

from __future__ import annotations

import tensorflow as tf

from input_pipeline.keys import IGNORE_LABEL
from input_pipeline.pp import joint
from input_pipeline.pp.base import OpFactory, PPContext, TensorFn, in_key_out_key
from input_pipeline.sources.synthetic_jft import taxonomy


def _level_table(ctx: PPContext, level: str, op: str) -> tf.Tensor:
    """Per leaf class id: 1 + its `level` index (taxonomy.semantic_classes)."""
    names = ctx.hierarchy.class_names if ctx.hierarchy is not None else None
    if names is None:
        raise ValueError(f"{op}: the context has no class names; it needs the "
                         "synthetic_jft hierarchy from the dataset's metadata "
                         "(PPContext(hierarchy=source.hierarchy())).")
    return tf.constant(taxonomy.semantic_classes(names, level), tf.int32)


@in_key_out_key("segmentation", with_data=True)
def semantic_from_instances(ctx: PPContext, level: str = "family",
                            labels: str = "objects/label") -> TensorFn:
    """synthetic_jft's instance map -> semantic classes of `level`.

    The map holds object index + 1 (0: background) and `labels` (a '/'-path)
    each object's leaf class; the result is 0 for background and
    1 + the index of the object's shape family (or shape) for its pixels, as
    `taxonomy.semantic_classes` says; 255 (ignore, e.g. padding) stays 255.
    `taxonomy.num_semantic_classes(level)` gives the class count without TF.
    """
    table = _level_table(ctx, level, "semantic_from_instances")

    def fn(instances, data):
        leaf = tf.cast(joint.get_path(data, labels), tf.int32)
        # Index 0 is the background, 1..N the objects, then ignore for the rest.
        per_index = tf.concat([[0], tf.gather(table, leaf)], axis=0)
        ids = tf.cast(instances, tf.int32)
        known = ids < tf.shape(per_index)[0]
        out = tf.where(known, tf.gather(per_index, tf.where(known, ids, 0)),
                       IGNORE_LABEL)
        return tf.cast(out, instances.dtype)
    return fn


@in_key_out_key("objects")
def objects_to_level(ctx: PPContext, level: str = "family") -> TensorFn:
    """Each object's leaf class (`objects/label`) -> its 0-based shape family (or
    shape) id: detection classes at a coarser level than the leaves."""
    # semantic_classes counts from 1 (0 is its background): shift to 0-based.
    table = _level_table(ctx, level, "objects_to_level") - 1

    def fn(objects):
        leaf = tf.cast(objects["label"], tf.int32)
        return {**objects, "label": tf.cast(tf.gather(table, leaf), objects["label"].dtype)}
    return fn


@in_key_out_key("objects")
def objects_of_families(ctx: PPContext, families: tuple[str, ...] = ()) -> TensorFn:
    """After objects_to_level('family'): only the objects of `families`, their
    labels renumbered 0.. in the order given (detecting a family held out of
    pre-training, with the other objects left unlabelled in the image)."""
    order = taxonomy.SEMANTIC_LEVELS["family"]
    unknown = [f for f in families if f not in order]
    if not families or unknown:
        raise ValueError(f"objects_of_families: give families of {list(order)}, not "
                         f"{list(families)}.")
    table = [-1] * len(order)
    for i, f in enumerate(families):
        table[order.index(f)] = i
    new_label = tf.constant(table, tf.int32)

    def fn(objects):
        label = tf.gather(new_label, tf.cast(objects["label"], tf.int32))
        keep = label >= 0
        out = {k: tf.boolean_mask(v, keep) for k, v in objects.items()}
        out["label"] = tf.cast(tf.boolean_mask(label, keep), objects["label"].dtype)
        return out
    return fn


OPS = {"semantic_from_instances": OpFactory(semantic_from_instances),
       "objects_to_level": OpFactory(objects_to_level),
       "objects_of_families": OpFactory(objects_of_families)}
