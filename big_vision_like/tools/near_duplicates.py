"""Near-duplicates between a pre-training split and an evaluation split (Appendix A).

Both splits are embedded with a checkpoint's pre-logit features (the pooled
features before the head: the task's `features` predict function, as the
few-shot and linear-probe evaluators read them), L2-normalised, and each
evaluation image's most similar training images are found by an exact,
blocked and device-sharded cosine search (tools/topk_search.py). Pairs at or
above a threshold are written as pairs.json / pairs.csv, a contact sheet and
`duplicate_eval_ids.txt`, which the evaluators' `exclude_ids` option reads to
report `_dedup` metrics without those images.

    python -m big_vision_like.tools.near_duplicates \\
        --checkpoint workdirs/demo/checkpoints/1500 \\
        --train synthetic_jft/demo:train --eval synthetic_jft/demo:test \\
        --threshold 0.95 --out /tmp/neardup --data_dir data/tfds
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from big_vision_like import filesystem as fs
from big_vision_like import init_from, trainer
from big_vision_like import mesh as mesh_lib
from big_vision_like.tools.topk_search import blocked_topk, l2_normalise, pairs_above
from evaluators.common import IMAGE_ID_KEY, to_host
from input_pipeline.keys import MASK_KEY

IDS_FILE = "duplicate_eval_ids.txt"


PRE_LOGITS = "pre_logits"


def grid_pool(x: jax.Array, grid: int) -> jax.Array:
    """[N, H, W, C] feature maps mean-pooled to a grid x grid layout, flattened; keeps
    where things are, which a randomly initialised body's global pool loses."""
    n, h, w, c = x.shape
    if h % grid or w % grid:
        raise ValueError(f"feature maps {h}x{w} do not split into a {grid}x{grid} grid; "
                         "choose a grid dividing both.")
    return x.reshape(n, grid, h // grid, grid, w // grid, c).mean((2, 4)).reshape(n, -1)


@dataclasses.dataclass
class FeatureModel:
    """A checkpoint's model with its feature function (`pre_logits`, or a layer's
    grid-pooled maps), on all devices."""

    config: ml_collections.ConfigDict
    mesh: Any
    variables: Any
    features: Callable[[Any, dict], dict[str, jax.Array]]  # jitted predict function

    @property
    def image_size(self) -> int:
        return int(self.config.input.image_shape[0])

    def default_pp(self) -> str:
        """The evaluators' preprocessing at the checkpoint's resolution, keeping ids."""
        s = self.image_size
        return (f"decode|resize({s * 9 // 8})|central_crop({s})|value_range(-1, 1)"
                f"|keep('image', '{IMAGE_ID_KEY}')")

    def embed(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Pre-logit features [N, d] of preprocessed images [N, H, W, 3] (float32, as
        the model's pp gives them)."""
        n_dev = self.mesh.size
        batch_size = -(-batch_size // n_dev) * n_dev
        out = []
        for start in range(0, len(images), batch_size):
            chunk = np.asarray(images[start:start + batch_size], np.float32)
            padded = np.zeros((batch_size, *chunk.shape[1:]), np.float32)
            padded[:len(chunk)] = chunk
            batch = jax.device_put({"image": padded}, mesh_lib.batch_sharding(self.mesh))
            out.append(to_host(self.features(self.variables, batch)["pre_logits"])[:len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def embed_split(self, dataset: str, split: str, data_dir: str | None = None,
                    pp: str | None = None, batch_size: int = 256
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(image ids [N], pre-logit features [N, d]) of one exact pass over a split."""
        from input_pipeline.pp.base import PPContext
        from input_pipeline.pp.builder import build_preprocess
        from input_pipeline.pp.registry import default_registry
        from input_pipeline.sources.registry import open_source
        from input_pipeline.stream import batches
        from input_pipeline.stream.device import DevicePrefetcher

        source = open_source(dataset, data_dir)
        if IMAGE_ID_KEY not in source.info.features:
            raise ValueError(f"{dataset} has no {IMAGE_ID_KEY!r} feature; near-duplicate "
                             "ids are the dataset's image ids.")
        pipeline = build_preprocess(pp or self.default_pp(), default_registry(source.pp_ops),
                                    PPContext())
        shard = batches.HostShard.current()
        n_dev = self.mesh.size
        local = (-(-batch_size // n_dev) * n_dev) // shard.count or n_dev
        ds, _ = batches.eval_dataset(source, split, pipeline, local, shard=shard)
        ids, feats = [], []
        with DevicePrefetcher(batches.HostIterator(ds, f"near_duplicates {dataset}"),
                              mesh_lib.batch_sharding(self.mesh)) as it:
            for batch in it:
                if IMAGE_ID_KEY not in batch:
                    raise KeyError(f"the pp string must keep {IMAGE_ID_KEY!r} "
                                   f"(keep('image', '{IMAGE_ID_KEY}')).")
                mask = to_host(batch[MASK_KEY])
                out = self.features(self.variables, {"image": batch["image"]})
                feats.append(to_host(out["pre_logits"])[mask])
                ids.append(to_host(batch[IMAGE_ID_KEY])[mask])
        return np.concatenate(ids).astype(np.int64), np.concatenate(feats)


def load_feature_model(checkpoint: str, feature: str = PRE_LOGITS) -> FeatureModel:
    """The model of a checkpoint step folder, built from its run's config.json (two
    levels up), with its variables restored; the head is not read, since features
    do not depend on it. `feature`: 'pre_logits' (the task's `features` predict
    function, as the probes read it) or '<layer>_grid<G>' (e.g. 'conv2_grid4': that
    layer's maps mean-pooled to G x G), returned under 'pre_logits'."""
    config = trainer.read_config(
        fs.parent(fs.absolute(checkpoint), 2),
        "a step folder of a run's checkpoints, <workdir>/checkpoints/<step>, whose workdir "
        "holds the run's config.json")
    mesh = mesh_lib.make_mesh(-1, 1)
    # The head's width is the dataset's class count; any width serves the features.
    task = trainer.build_task(config, mesh, config.model.get("num_classes") or 1)
    fns = task.predict_fns()
    layer = re.fullmatch(r"(\w+)_grid(\d+)", feature)
    if feature == PRE_LOGITS:
        if "features" not in fns:
            raise ValueError(f"the {config.get('task', 'classification')} task has no "
                             f"'features' predict function (it has {sorted(fns)}); "
                             "near-duplicates need pre-logit features.")
        fn = fns["features"]
    elif layer:
        name, grid = layer.group(1), int(layer.group(2))
        fn = lambda out, batch: {PRE_LOGITS: grid_pool(out[name], grid)}
    else:
        raise ValueError(f"feature={feature!r}: give 'pre_logits' or '<layer>_grid<G>', "
                         "e.g. 'conv2_grid4'.")
    # Shapes only: compiling the initialiser costs more than the search on CPU.
    replicated = NamedSharding(mesh, P())
    abstract = jax.eval_shape(partial(task.init, image_shape=tuple(config.input.image_shape)),
                              jax.random.key(0))
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                           sharding=replicated), abstract)
    variables, report = init_from.merge(abstract, init_from.load_variables(checkpoint),
                                        skip="^head/", load_hook=task.load)
    if report.missing:
        raise ValueError(f"checkpoint {checkpoint} lacks {report.missing[:5]}...; it does "
                         f"not hold the model its config.json describes.")
    # The head is never read; it only has to exist for `apply`.
    variables = jax.tree.map(
        lambda x: jax.device_put(np.zeros(x.shape, x.dtype), replicated)
        if isinstance(x, jax.ShapeDtypeStruct) else x, variables)
    features = jax.jit(lambda v, b: fn(task.forward(v, b, train=False), b),
                       in_shardings=(replicated, mesh_lib.batch_sharding(mesh)))
    return FeatureModel(config=config, mesh=mesh, variables=variables, features=features)


def normalise(eval_features: np.ndarray, train_features: np.ndarray, center: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows; with `center`, after subtracting the training features' mean (post-ReLU
    features share a large positive mean that pushes every cosine towards 1)."""
    if center:
        mean = np.asarray(train_features, np.float64).mean(0).astype(np.float32)
        eval_features, train_features = eval_features - mean, train_features - mean
    return l2_normalise(eval_features), l2_normalise(train_features)


def find_near_duplicates(eval_features: np.ndarray, train_features: np.ndarray,
                         threshold: float, k: int = 5, center: bool = False, **search: Any
                         ) -> tuple[list[tuple[int, int, float]], np.ndarray, np.ndarray]:
    """(pairs (eval row, train row, cosine) at or above `threshold`, top-k similarities,
    top-k training rows) of L2-normalised features."""
    sims, index = blocked_topk(*normalise(eval_features, train_features, center), k,
                               **search)
    return pairs_above(sims, index, threshold), sims, index


def write_pairs(out_dir: str, pairs: Sequence[tuple[int, int, float]],
                eval_ids: np.ndarray, train_ids: np.ndarray) -> list[dict[str, Any]]:
    """pairs.json, pairs.csv (eval_id, train_id, similarity) and duplicate_eval_ids.txt
    (one id a line, what `exclude_ids` reads); returns the pair records."""
    fs.makedirs(out_dir)
    records = [{"eval_id": int(eval_ids[e]), "train_id": int(train_ids[t]),
                "similarity": round(float(s), 6)} for e, t, s in pairs]
    with fs.open(fs.join(out_dir, "pairs.json"), "w") as f:
        json.dump(records, f, indent=1)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=["eval_id", "train_id", "similarity"])
    writer.writeheader()
    writer.writerows(records)
    fs.write_atomic(fs.join(out_dir, "pairs.csv"), table.getvalue())
    duplicates = sorted({r["eval_id"] for r in records})
    with fs.open(fs.join(out_dir, IDS_FILE), "w") as f:
        f.writelines(f"{i}\n" for i in duplicates)
    return records


def contact_sheet(path: str, pairs: Sequence[tuple[np.ndarray, np.ndarray, str]],
                  tile: int = 96, columns: int = 4) -> None:
    """A PNG of (eval image, train image, caption) cells, `columns` cells a row, images
    uint8 [H, W, 3]."""
    from PIL import Image, ImageDraw

    cell_w = 2 * tile + 150  # two images and the caption
    columns = max(1, min(columns, len(pairs)))
    rows = max(1, -(-len(pairs) // columns))
    sheet = Image.new("RGB", (columns * cell_w, rows * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (a, b, caption) in enumerate(pairs):
        x0, y0 = (n % columns) * cell_w, (n // columns) * tile
        for col, img in enumerate((a, b)):
            sheet.paste(Image.fromarray(np.asarray(img, np.uint8)).resize((tile, tile)),
                        (x0 + col * tile, y0))
        draw.text((x0 + 2 * tile + 6, y0 + tile // 4), caption, fill="black")
    png = io.BytesIO()
    sheet.save(png, format="PNG")
    fs.write_atomic(path, png.getvalue())


def images_by_id(dataset: str, split: str, ids: Sequence[int], data_dir: str | None = None
                 ) -> dict[int, np.ndarray]:
    """The decoded images of the examples with these image ids (one filtered pass
    that decodes only them)."""
    import tensorflow as tf

    from input_pipeline.sources.registry import open_source

    wanted = tf.constant(sorted({int(i) for i in ids}), tf.int64)
    ds = open_source(dataset, data_dir).read(split)
    ds = ds.filter(lambda ex: tf.reduce_any(tf.equal(tf.cast(ex[IMAGE_ID_KEY], tf.int64),
                                                     wanted)))
    ds = ds.map(lambda ex: (ex[IMAGE_ID_KEY], tf.io.decode_image(
        ex["image"], channels=3, expand_animations=False)))
    return {int(i): img for i, img in ds.as_numpy_iterator()}


def _dataset_split(spec: str) -> tuple[str, str]:
    name, sep, split = spec.partition(":")  # the split may hold one: train[:10%]
    if not sep or not name or not split:
        raise ValueError(f"{spec!r}: give <dataset>:<split>, e.g. synthetic_jft/demo:train.")
    return name, split


def run(checkpoint: str, train: str, evaluation: str, threshold: float, out_dir: str,
        data_dir: str | None = None, k: int = 5, max_pairs: int = 64, pp: str | None = None,
        block_size: int = 4096, feature: str = PRE_LOGITS, center: bool = False
        ) -> dict[str, Any]:
    """The whole tool; returns its summary (also written as summary.json)."""
    train_name, train_split = _dataset_split(train)
    eval_name, eval_split = _dataset_split(evaluation)
    model = load_feature_model(checkpoint, feature)
    train_ids, train_x = model.embed_split(train_name, train_split, data_dir, pp)
    eval_ids, eval_x = model.embed_split(eval_name, eval_split, data_dir, pp)
    pairs, sims, _ = find_near_duplicates(eval_x, train_x, threshold, k, center,
                                          block_size=block_size)
    records = write_pairs(out_dir, pairs, eval_ids, train_ids)
    shown = records[:max_pairs]
    eval_imgs = images_by_id(eval_name, eval_split, [r["eval_id"] for r in shown], data_dir)
    train_imgs = images_by_id(train_name, train_split, [r["train_id"] for r in shown],
                              data_dir)
    contact_sheet(fs.join(out_dir, "contact_sheet.png"),
                  [(eval_imgs[r["eval_id"]], train_imgs[r["train_id"]],
                    f"eval {r['eval_id']}\ntrain {r['train_id']}\ncos {r['similarity']:.3f}")
                   for r in shown])
    summary = {"checkpoint": fs.absolute(checkpoint), "train": train, "eval": evaluation,
               "threshold": threshold, "k": k,
               "feature": feature, "center": center, "train_images": len(train_ids),
               "eval_images": len(eval_ids), "pairs": len(records),
               "duplicate_eval_images": len({r["eval_id"] for r in records}),
               "top1_similarity_quantiles": {
                   str(q): float(np.quantile(sims[:, 0], q)) for q in (0.5, 0.9, 0.99, 1.0)}
               if len(sims) else {},
               "ids_file": fs.join(out_dir, IDS_FILE)}
    with fs.open(fs.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="<workdir>/checkpoints/<step>")
    parser.add_argument("--train", required=True, help="<dataset>:<split> pre-training")
    parser.add_argument("--eval", required=True, help="<dataset>:<split> evaluation")
    parser.add_argument("--threshold", type=float, required=True, help="cosine similarity")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--data_dir", default=None, help="TFDS data_dir")
    parser.add_argument("--k", type=int, default=5, help="neighbours kept per eval image")
    parser.add_argument("--max_pairs", type=int, default=64, help="pairs on the sheet")
    parser.add_argument("--pp", default=None, help="pp string (default: the evaluators' "
                        "resize + central crop at the checkpoint's size, keeping image_id)")
    parser.add_argument("--feature", default=PRE_LOGITS, help="'pre_logits' or "
                        "'<layer>_grid<G>' (a layer's maps mean-pooled to G x G)")
    parser.add_argument("--center", action="store_true",
                        help="subtract the training features' mean before the cosine")
    args = parser.parse_args(argv)
    summary = run(args.checkpoint, args.train, args.eval, args.threshold, args.out,
                  args.data_dir, args.k, args.max_pairs, args.pp, feature=args.feature,
                  center=args.center)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
