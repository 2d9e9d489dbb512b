"""TFDS builder `voc2012_segmentation`: PASCAL VOC 2012 semantic segmentation
read from an extracted local copy (nothing is downloaded).

Expected layout inside the manual folder (as the official VOCtrainval tar
extracts; `VOCdevkit/` or `VOC2012/` may also be the folder itself):

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png       palette PNGs
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
    # optional, the SBD-augmented training set (10,582 images), either as
    # DeepLab's PNG release:
    VOCdevkit/VOC2012/SegmentationClassAug/<id>.png
    VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt
    # or SBD's own benchmark.tgz, extracted beside VOCdevkit (needs scipy):
    benchmark_RELEASE/dataset/{cls/<id>.mat, train.txt, val.txt}

The masks' pixel values are class ids (VOC's palette indices, 0 background,
1-20 the classes, 255 boundary/ignore); the palette's colours are never used.

    import input_pipeline.sources.voc2012.builder  # registers it with TFDS
    builder = tfds.builder("voc2012_segmentation", data_dir=...)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir="/path/to/extracted"))
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from input_pipeline.keys import IGNORE_LABEL
from input_pipeline.sources.class_names import VOC_SEGMENTATION_CLASSES as CLASS_NAMES
from input_pipeline.sources.local_files import (
    LocalDataError,
    find_root,
    manual_dir_of,
    require_files,
)

ROOT_CANDIDATES = (".", "VOC2012", "VOCdevkit/VOC2012")
LISTS = "ImageSets/Segmentation"
AUG_MASKS = "SegmentationClassAug"
# SBD's benchmark.tgz extracts to benchmark_RELEASE/dataset/{cls,img,train.txt,val.txt}.
SBD_CANDIDATES = ("benchmark_RELEASE/dataset", "SBD/dataset", "dataset", "SBD")

INSTRUCTIONS = """\
Extract VOCtrainval_11-May-2012.tar into a folder and pass it as manual_dir
(`python -m input_pipeline.prepare --dataset voc2012_segmentation
--data_dir DIR --manual_dir FOLDER`); FOLDER must hold VOCdevkit/VOC2012/ with
JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/{train,val}.txt.
For the `train_aug` split also put the SBD-augmented masks in
VOCdevkit/VOC2012/SegmentationClassAug/ and their id list in
ImageSets/Segmentation/train_aug.txt, or extract SBD's benchmark.tgz into
FOLDER (benchmark_RELEASE/dataset/cls/*.mat)."""


def read_ids(path: str) -> list[str]:
    """Image ids of a list file: one id a line, or DeepLab's
    '/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png' lines."""
    ids = []
    with open(path) as f:
        for line in f:
            if line.strip():
                ids.append(os.path.splitext(os.path.basename(line.split()[0]))[0])
    if not ids:
        raise LocalDataError(f"{path} lists no images; restore it from the VOC archive.")
    return ids


def read_mask(path: str, allow_grey: bool) -> np.ndarray:
    """The class-id map [H, W, 1] uint8 of a mask PNG.

    VOC's own masks are palette PNGs whose indices are the class ids; an RGB
    copy would need its colours mapped back, so it is refused rather than
    guessed. The augmented (SBD) masks are usually shipped as greyscale PNGs
    holding class ids, so `allow_grey` accepts mode 'L' too.
    """
    with Image.open(path) as im:
        modes = ("P", "L") if allow_grey else ("P",)
        if im.mode not in modes:
            raise LocalDataError(
                f"{path} is a {im.mode!r} PNG, not a palette ('P') PNG whose pixel "
                "values are the class ids; use the original mask files from the VOC "
                "archive (a colour-converted copy cannot be read back reliably).")
        mask = np.asarray(im, dtype=np.uint8)
    bad = np.setdiff1d(np.unique(mask), [*range(len(CLASS_NAMES)), IGNORE_LABEL])
    if bad.size:
        raise LocalDataError(
            f"{path} has pixel values {bad.tolist()[:10]}, but VOC class ids are "
            f"0-{len(CLASS_NAMES) - 1} and {IGNORE_LABEL} (ignore); is it a VOC "
            "segmentation mask?")
    return mask[:, :, None]


def image_size(path: str) -> tuple[int, int]:
    """(height, width) from the file's header, without decoding it."""
    with Image.open(path) as im:
        return im.height, im.width


class Voc2012Segmentation(tfds.core.GeneratorBasedBuilder):
    """voc2012_segmentation: VOC 2012 class segmentation from a local copy."""

    name = "voc2012_segmentation"
    # The splits it can write, read without data by SourceKind.declared_splits;
    # train_aug only where SBD's masks are there too.
    SPLITS = ("train", "val", "train_aug")
    # DataSource.check_split adds these to its error for a split not prepared.
    MISSING_SPLIT_HINTS = {  # noqa: RUF012 (read-only)
        "train_aug": "train_aug, the SBD-augmented training set (10,582 images; the paper's "
                     "DeepLab setting), is prepared only where SBD's masks are in the manual "
                     "folder: extract SBD's benchmark.tgz there (or put DeepLab's "
                     "SegmentationClassAug/ and train_aug.txt in VOCdevkit/VOC2012/) and "
                     "prepare again into a new data_dir; or train on the 1,464 'train' "
                     "images: --config.input.data.split=train"}
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3),
                                             encoding_format="jpeg"),
                "segmentation": tfds.features.Image(shape=(None, None, 1),
                                                    encoding_format="png"),
                "image_id": tfds.features.Text(),
            }),
            metadata=tfds.core.MetadataDict(class_names=list(CLASS_NAMES),
                                            ignore_label=IGNORE_LABEL),
            description=("PASCAL VOC 2012 semantic segmentation; `segmentation` "
                         "holds class ids (metadata class_names), 255 = ignore. "
                         "train_aug (when present) is the SBD-augmented train set."),
        )

    def _split_generators(self, dl_manager) -> dict:
        manual_dir = manual_dir_of(dl_manager, INSTRUCTIONS)
        root = find_root(manual_dir, ROOT_CANDIDATES,
                         ("JPEGImages", "SegmentationClass", LISTS),
                         self.name, INSTRUCTIONS)
        splits = {}
        for split in ("train", "val"):
            list_file = os.path.join(root, LISTS, f"{split}.txt")
            require_files([list_file], f"{split} list", INSTRUCTIONS)
            ids = read_ids(list_file)
            masks = [os.path.join(root, "SegmentationClass", f"{i}.png") for i in ids]
            splits[split] = self._examples(root, split, ids, masks, list_file)
        val = read_ids(os.path.join(root, LISTS, "val.txt"))
        aug_list = os.path.join(root, LISTS, "train_aug.txt")
        sbd = _find_sbd(manual_dir)
        if os.path.isdir(os.path.join(root, AUG_MASKS)) and os.path.isfile(aug_list):
            ids = read_ids(aug_list)
            overlap = sorted(set(val).intersection(ids))
            if overlap:
                raise LocalDataError(
                    f"{aug_list} lists {len(overlap)} val images (e.g. {overlap[0]}); "
                    "training on them would inflate val scores. Remove them "
                    "(the standard train_aug list has 10,582 ids and none of val).")
            masks = [os.path.join(root, AUG_MASKS, f"{i}.png") for i in ids]
            splits["train_aug"] = self._examples(root, "train_aug", ids, masks, aug_list)
        elif sbd is not None:
            ids, masks = _sbd_train_aug(root, sbd, val)
            splits["train_aug"] = self._examples(root, "train_aug", ids, masks,
                                                 os.path.join(sbd, "train.txt"))
        return splits

    def _examples(self, root: str, split: str, ids: list[str], masks: list[str],
                  list_file: str) -> Iterator[tuple[str, dict]]:
        images = [os.path.join(root, "JPEGImages", f"{i}.jpg") for i in ids]
        fix = (f"{list_file} lists them: extract the complete archive"
               + (" and the SBD-augmented masks." if split == "train_aug" else "."))
        require_files(images, f"{split} images", fix)
        require_files(masks, f"{split} masks", fix)
        return self._generate_examples(ids, images, masks)

    def _generate_examples(self, ids: list[str], images: list[str], masks: list[str]
                           ) -> Iterator[tuple[str, dict]]:
        for image_id, image, mask_path in zip(ids, images, masks):
            mask = read_any_mask(mask_path)
            if image_size(image) != mask.shape[:2]:
                raise LocalDataError(
                    f"{mask_path} is {mask.shape[0]}x{mask.shape[1]} but {image} is "
                    f"{'x'.join(map(str, image_size(image)))} (height x width); a "
                    "mask must cover its image pixel for pixel: restore both files "
                    "from the archive.")
            # The JPEG's bytes are stored as they are: no re-encoding loss.
            yield image_id, {"image": image, "segmentation": mask, "image_id": image_id}


def read_any_mask(path: str) -> np.ndarray:
    """VOC's palette PNG, a SegmentationClassAug PNG or an SBD .mat, as [H, W, 1]."""
    if path.endswith(".mat"):
        return read_sbd_mask(path)
    return read_mask(path, allow_grey=os.path.basename(os.path.dirname(path)) == AUG_MASKS)


def read_sbd_mask(path: str) -> np.ndarray:
    """The class-id map of an SBD `cls/<id>.mat` (GTcls.Segmentation) as [H, W, 1]."""
    from scipy import io  # only the SBD layout needs it

    try:
        mask = io.loadmat(path, squeeze_me=True, struct_as_record=False)[
            "GTcls"].Segmentation
    except (KeyError, AttributeError, ValueError, OSError) as e:
        raise LocalDataError(f"{path} is not an SBD class mask (GTcls.Segmentation: "
                             f"{e}); extract SBD's benchmark.tgz again.") from None
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.min() < 0 or mask.max() >= len(CLASS_NAMES):
        raise LocalDataError(f"{path}: GTcls.Segmentation is not a 2-D map of VOC "
                             "class ids; extract SBD's benchmark.tgz again.")
    return mask.astype(np.uint8)[:, :, None]


def _find_sbd(manual_dir: str) -> str | None:
    """SBD's `dataset/` folder (benchmark.tgz) inside manual_dir, if it is there."""
    for sub in SBD_CANDIDATES:
        d = os.path.join(manual_dir, sub)
        if all(os.path.exists(os.path.join(d, f)) for f in ("cls", "train.txt", "val.txt")):
            return os.path.normpath(d)
    return None


def _sbd_train_aug(root: str, sbd: str, val: list[str]) -> tuple[list[str], list[str]]:
    """The usual augmented set: VOC train plus all of SBD, minus VOC val.

    Where VOC has its own mask (with the 255 boundary) it is used; SBD's
    masks have no ignore label.
    """
    try:
        import scipy.io  # noqa: F401
    except ImportError:
        raise LocalDataError(
            f"{sbd} holds SBD's .mat masks, which need scipy (pip install scipy); "
            "or use the SegmentationClassAug PNG layout instead.") from None
    voc_train = read_ids(os.path.join(root, LISTS, "train.txt"))
    sbd_ids = read_ids(os.path.join(sbd, "train.txt")) + read_ids(os.path.join(sbd, "val.txt"))
    excluded = set(val)
    ids = sorted(set(voc_train + sbd_ids) - excluded)
    voc_masks = set(voc_train)
    masks = [os.path.join(root, "SegmentationClass", f"{i}.png") if i in voc_masks
             else os.path.join(sbd, "cls", f"{i}.mat") for i in ids]
    return ids, masks
