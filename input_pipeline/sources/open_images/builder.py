"""TFDS builder `open_images_labels`: Open Images image-level labels from a local copy.

The public stand-in for JFT: a folder of JPEGs, human-verified labels
(present and absent), machine labels with a confidence, ~20K classes and a
hierarchy. Nothing is downloaded; the files are laid out as the official
downloads name them (see `files.py` and INSTRUCTIONS).

Features, so a config can swap synthetic_jft for this:
    image            the JPEG's bytes as they are on disk (other formats and
                     CMYK JPEGs re-encoded as RGB JPEG)
    image_id         Open Images' ImageID
    labels           positive class ids as the files give them (ancestors are
                     filled in by the pipeline's `multi_hot` from the hierarchy
                     in the metadata, as for synthetic_jft's training labels)
    negative_labels  human-verified absent class ids (Confidence 0)
Metadata: class_names (the LabelNames, e.g. '/m/011k07', the names the
hierarchy JSON and `input.data.classes` files use), display_names,
hierarchy ([child, parent] id pairs; absent without a hierarchy file), and
build_report: per split, the images listed but missing, the unreadable ones
(each named, the first few), the images turned upright, label rows left
out, and verified negatives a positive implies present (kept as given).
Missing and unreadable images are skipped and counted; `strict=True` makes
them an error. Where the image-id files with a `Rotation` column are in
the folder, the 2.6% of photos stored sideways or upside down are turned as
they say (`rotate=False` keeps the files' pixels):

    import input_pipeline.sources.open_images.builder  # registers it with TFDS
    builder = tfds.builder("open_images_labels/human", data_dir=...)
    # or "open_images_labels/human_machine/strict=True"
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir="/path/to/open_images"))
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator
from concurrent import futures

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

from input_pipeline.sources.local_files import LocalDataError, manual_dir_of
from input_pipeline.sources.open_images import files

# Images read and checked at once by a thread pool (PIL decodes without the GIL).
_CHUNK = 256


@dataclasses.dataclass(eq=False)
class OpenImagesLabelsConfig(tfds.core.BuilderConfig):
    """machine_threshold: machine labels with Confidence at or above it are
    positives where no human verdict exists (None: human labels only)."""

    machine_threshold: float | None = None


def read_image(path: str) -> tuple[bytes | np.ndarray | None, str | None]:
    """(what the image feature stores, None) or (None, why the file is unreadable).

    A JPEG in RGB or greyscale is kept byte for byte after a full decode at
    1/8 scale (libjpeg still reads every coded block, so truncation and
    corruption show, at a fraction of the cost of a full-size decode).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG" and im.mode in ("RGB", "L"):
                im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
                return data, None
            return np.asarray(im.convert("RGB")), None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return None, f"{type(e).__name__}: {e}"


class OpenImagesLabels(tfds.core.GeneratorBasedBuilder):
    """open_images_labels: Open Images image-level labels from a local folder."""

    name = "open_images_labels"
    # The splits it can write, read without data by SourceKind.declared_splits.
    SPLITS = files.SPLITS
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)
    MANUAL_DOWNLOAD_INSTRUCTIONS = files.INSTRUCTIONS
    BUILDER_CONFIGS = [  # noqa: RUF012 (TFDS API)
        OpenImagesLabelsConfig(name="human", description="Human-verified labels only."),
        OpenImagesLabelsConfig(
            name="human_machine", machine_threshold=0.7,
            description="Human-verified labels, and machine labels of Confidence >= 0.7 "
                        "where no human verdict exists."),
    ]
    DEFAULT_CONFIG_NAME = "human"

    def __init__(self, *, strict: bool = False, verify_images: bool = True,
                 rotate: bool = True, **kwargs):
        """strict: a missing or unreadable image, or a label of a class outside the
        class list, stops preparation (default: skipped and counted in the
        metadata's build_report). verify_images=False skips the decode check
        (unreadable images then fail, or are skipped, in the training pipeline).
        rotate=False leaves images as stored, whatever the rotation files say."""
        self.strict, self.verify_images, self.rotate = strict, verify_images, rotate
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "image_id": tfds.features.Text(),
                # Class names come from the files: set when preparing, then
                # restored from the names files TFDS writes beside the data.
                "labels": tfds.features.Sequence(tfds.features.ClassLabel()),
                "negative_labels": tfds.features.Sequence(tfds.features.ClassLabel()),
            }),
            metadata=tfds.core.MetadataDict(),
            description=(
                "Open Images image-level labels: `labels` the positives as given "
                "(ancestors not filled in), `negative_labels` the human-verified "
                "absent classes. metadata: class_names (LabelNames), display_names, "
                "hierarchy, build_report (missing and unreadable images per split)."),
        )

    def _split_generators(self, dl_manager) -> dict:
        cfg: OpenImagesLabelsConfig = self.builder_config
        layout = files.find_layout(manual_dir_of(dl_manager, files.INSTRUCTIONS))
        names, display = files.read_class_descriptions(layout.class_file)
        index = {n: i for i, n in enumerate(names)}
        meta = self.info.metadata
        meta.update(class_names=names, display_names=display,
                    class_file=os.path.basename(layout.class_file),
                    machine_threshold=cfg.machine_threshold, build_report={})
        ancestors = None
        if layout.hierarchy_file is not None:
            from input_pipeline.hierarchy import LabelHierarchy

            pairs = files.hierarchy_pairs(layout.hierarchy_file, index)
            # A cycle is an error here.
            ancestors = LabelHierarchy.from_pairs(pairs, len(names), names).ancestors()
            meta.update(hierarchy=[list(p) for p in pairs],
                        hierarchy_file=os.path.basename(layout.hierarchy_file))
        else:
            logging.warning("open_images_labels: no %s in %s; labels get no ancestors.",
                            files.HIERARCHY_FILE, layout.root)
        for key in ("labels", "negative_labels"):
            self.info.features[key].feature.names = names
        splits = {}
        for split in files.SPLITS:
            kinds = layout.label_files.get(split, {})
            if kinds.get("human") or (kinds.get("machine") and cfg.machine_threshold is not None):
                splits.update(self._split(layout, split, kinds, index, ancestors))
        if not splits:
            raise LocalDataError(
                f"open_images_labels: no split has both label files and images on disk "
                f"under {layout.root} (report: {meta['build_report']}). {files.INSTRUCTIONS}")
        return splits

    def _split(self, layout: files.Layout, split: str, kinds: dict, index: dict,
               ancestors: list[np.ndarray] | None) -> dict:
        cfg: OpenImagesLabelsConfig = self.builder_config
        folder = files.image_dir(layout.root, split)
        on_disk = files.list_images(folder) if folder else {}
        labels = files.read_split_labels(kinds.get("human", ()), kinds.get("machine", ()),
                                         index, on_disk, cfg.machine_threshold)
        usable = sorted(i for i in labels.listed
                        if i in labels.positives or i in labels.negatives)
        report = {
            "listed_images": len(labels.listed) + len(labels.missing),
            "missing_images": len(labels.missing),
            "missing_ids": sorted(labels.missing)[:files.EXAMPLES_SHOWN],
            "images_without_labels": len(labels.listed) - len(usable),
            "unlisted_images": len(on_disk) - len(labels.listed),
            "unknown_label_rows": labels.unknown_rows,
            "unknown_label_names": sorted(labels.unknown_names),
            "machine_labels_below_threshold": labels.machine_below_threshold,
            "machine_labels_overruled_by_humans": labels.machine_overruled,
            "conflicting_human_labels": labels.conflicts,
            "negatives_implied_present": files.negatives_implied_present(labels, ancestors),
            "unreadable_images": 0, "unreadable": [], "examples": 0,
        }
        turns = {}
        if self.rotate:
            turns = files.read_rotations(layout.rotation_files.get(split, ()), usable)
        report["rotated_images"] = len(turns)
        self.info.metadata["build_report"][split] = report
        where = folder or os.path.join(layout.root, files.IMAGE_DIRS[split][0])
        if labels.missing:
            logging.warning("open_images_labels %s: %d of %d listed images are not in %s "
                            "(e.g. %s); they are skipped.", split, len(labels.missing),
                            report["listed_images"], where, report["missing_ids"][:3])
        if self.strict and (labels.missing or labels.unknown_rows):
            raise LocalDataError(
                f"open_images_labels {split} (strict): {len(labels.missing)} listed images "
                f"are not in {where} (e.g. {', '.join(report['missing_ids'][:5])}) and "
                f"{labels.unknown_rows} label rows name classes outside "
                f"{os.path.basename(layout.class_file)} (e.g. "
                f"{report['unknown_label_names'][:5]}); download the missing files, or "
                "prepare without strict to skip and count them.")
        if not usable:
            logging.warning("open_images_labels %s: no labelled image on disk; split left "
                            "out.", split)
            return {}
        paths = [os.path.join(folder, on_disk[i]) for i in usable]
        return {split: self._generate_examples(split, usable, paths, labels, turns)}

    def _generate_examples(self, split: str, ids: list[str], paths: list[str],
                           labels: files.SplitLabels,
                           turns: dict[str, int]) -> Iterator[tuple[str, dict]]:
        report = self.info.metadata["build_report"][split]
        with futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            for start in range(0, len(ids), _CHUNK):
                chunk = slice(start, start + _CHUNK)
                loaded = pool.map(self._load, paths[chunk],
                                  [turns.get(i, 0) for i in ids[chunk]])
                for image_id, path, (image, why) in zip(ids[chunk], paths[chunk], loaded):
                    if image is None:
                        self._unreadable(split, report, path, why)
                        continue
                    report["examples"] += 1
                    yield image_id, {
                        "image": image, "image_id": image_id,
                        "labels": sorted(labels.positives.get(image_id, ())),
                        "negative_labels": sorted(labels.negatives.get(image_id, ())),
                    }
        if report["unreadable_images"]:
            logging.warning("open_images_labels %s: %d unreadable images skipped (e.g. %s).",
                            split, report["unreadable_images"], report["unreadable"][:3])

    def _load(self, path: str, turns: int = 0) -> tuple[bytes | np.ndarray | None, str | None]:
        if self.verify_images or turns:
            image, why = read_image(path)
        else:
            with open(path, "rb") as f:
                image, why = f.read(), None
        if image is None or not turns:
            return image, why
        if isinstance(image, bytes):
            with Image.open(io.BytesIO(image)) as im:
                image = np.asarray(im.convert("RGB"))
        # Counter-clockwise quarter turns; the feature re-encodes the pixels as JPEG.
        return np.ascontiguousarray(np.rot90(image, turns)), None

    def _unreadable(self, split: str, report: dict, path: str, why: str | None) -> None:
        if self.strict:
            raise LocalDataError(f"open_images_labels {split} (strict): {path} cannot be "
                                 f"read ({why}); replace the file, or prepare without "
                                 "strict to skip and count it.")
        report["unreadable_images"] += 1
        if len(report["unreadable"]) < files.EXAMPLES_SHOWN:
            report["unreadable"].append(f"{os.path.basename(path)}: {why}")
