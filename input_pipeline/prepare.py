"""Prepares a dataset and prints what the training pipeline will see.

    python -m input_pipeline.prepare --dataset synthetic_jft/demo [--data_dir DIR]
    python -m input_pipeline.prepare --dataset voc2012_segmentation \
        --data_dir DIR --manual_dir FOLDER_WITH_VOCdevkit

For the project's own builders this generates the data (no download); the
real datasets (voc2012_segmentation, coco_keypoints, coco_detection,
voc2007_detection) are written from the
extracted files in --manual_dir; for other TFDS datasets it reports on an
already prepared copy. A folder of the user's own images is named
`image_folder:/root` or `image_labels:/root` (input_pipeline/sources/local_formats).

A dataset prepared from --manual_dir is reused only while that folder is
unchanged (input_pipeline/sources/source_fingerprint.py): after a change,
--reprepare writes it again and --accept_source keeps the prepared copy.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow_datasets as tfds

from input_pipeline.errors import InputPipelineError
from input_pipeline.sources.core import DataSource
from input_pipeline.sources.kinds import FromManualFolder
from input_pipeline.sources.registry import default_registry


def label_statistics(source: DataSource, split: str = "train",
                     sample: int | None = 5000) -> dict[str, float]:
    """Labels per image, rank-frequency slope, classes with under 100 / 20 images;
    with per-object truth, the noisy and missing label rates. Reads the first
    `sample` examples (None: all), images left encoded; {} for a dataset without
    `labels` (multi-label) or `label` (single-label) class ids."""
    features = source.info.features
    key = "labels" if "labels" in features else "label" if "label" in features else None
    if key is None:
        return {}
    n_labels = n_images = wrong = missing = n_negatives = 0
    per_class = np.zeros(source.num_classes())
    has_objects = "objects" in features
    sample = min(sample or np.inf, source.num_examples(split))
    for ex in tfds.as_numpy(source.read(f"{split}[:{sample}]")):
        given = set(np.atleast_1d(ex[key]).tolist())
        n_images += 1
        n_labels += len(given)
        per_class[list(given)] += 1
        n_negatives += len(ex.get("negative_labels", ()))  # verified absent (Open Images)
        if has_objects:
            present = set(ex["objects"]["label"].tolist())
            wrong += len(given - present)
            missing += len(present - given)
    stats = {"images": n_images, "labels_per_image": n_labels / max(n_images, 1)}
    if "negative_labels" in features:
        stats["verified_negatives_per_image"] = n_negatives / max(n_images, 1)
    counts = np.sort(per_class[per_class > 0])[::-1]
    if len(counts) > 2:
        ranks = np.arange(1, len(counts) + 1)
        stats["rank_frequency_slope"] = float(np.polyfit(np.log(ranks), np.log(counts), 1)[0])
        stats["most_to_least_common"] = float(counts[0] / counts[-1])
    # Of all classes, over the images read (the whole split when `sample` covers it).
    stats["classes_under_100_images"] = int((per_class < 100).sum())
    stats["classes_under_20_images"] = int((per_class < 20).sum())
    if has_objects:
        stats["noisy_label_rate"] = wrong / max(n_labels, 1)
        stats["unlabelled_objects_per_image"] = missing / max(n_images, 1)
    return stats


def main() -> None:
    registry = default_registry()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic_jft/demo")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--manual_dir", default=None,
                        help="folder holding the extracted files of a real dataset "
                        f"({', '.join(registry.keys(FromManualFolder))})")
    parser.add_argument("--sample", type=int, default=5000,
                        help="examples the label statistics read (0: the whole split)")
    changed = parser.add_mutually_exclusive_group()
    changed.add_argument("--reprepare", action="store_true",
                         help="write a dataset prepared from --manual_dir again (after its "
                              "files changed)")
    changed.add_argument("--accept_source", action="store_true",
                         help="keep the prepared copy although its folder changed")
    args = parser.parse_args()
    start = time.perf_counter()
    policy = "reprepare" if args.reprepare else "accept" if args.accept_source else "refuse"
    try:
        source = registry.open(args.dataset, args.data_dir, manual_dir=args.manual_dir,
                               on_source_change=policy)
    except InputPipelineError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{args.dataset} ready in {source.builder.data_dir} "
          f"({time.perf_counter() - start:.0f} s)")
    for name, split in source.info.splits.items():
        print(f"  split {name}: {split.num_examples} examples")
    meta = source.metadata
    if "keypoint_names" in meta:
        print(f"  keypoints: {len(meta['keypoint_names'])}")
    else:
        hierarchy = source.hierarchy()
        print(f"  classes: {source.num_classes()}"
              + (f", hierarchy depth {max(len(a) for a in hierarchy.ancestors())}"
                 if hierarchy else ""))
    for split, report in meta.get("skipped_images", {}).items():
        if report["missing"] or report["unreadable"]:
            print(f"  split {split}: skipped {report['missing']} missing and "
                  f"{report['unreadable']} unreadable images {report['examples'][:3]}")
    for split, report in meta.get("build_report", {}).items():  # skipped input files
        print(f"  {split} build report: {report}")
    split = "train" if "train" in source.info.splits else next(iter(source.info.splits))
    for key, value in label_statistics(source, split, args.sample or None).items():
        print(f"  {split} {key}: {value:.3f}" if isinstance(value, float)
              else f"  {split} {key}: {value}")


if __name__ == "__main__":
    main()
