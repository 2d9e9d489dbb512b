"""TFDS builder `voc0712_detection`: the paper's PASCAL VOC detection data (Table 3):
train on the 16,551 'trainval' images of VOC 2007 and VOC 2012, test on VOC 2007
'test'. Read from extracted local copies; nothing is downloaded.

Expected layout inside the manual folder (VOCtrainval_06-Nov-2007.tar,
VOCtest_06-Nov-2007.tar and VOCtrainval_11-May-2012.tar extracted into the same
place, as they extract):

    VOCdevkit/VOC2007/{Annotations,JPEGImages,ImageSets/Main/{trainval,test}.txt}
    VOCdevkit/VOC2012/{Annotations,JPEGImages,ImageSets/Main/trainval.txt}

Examples, features and boxes are voc2007_detection's; ids do not clash (VOC
2012's carry their year, '2008_000002'; VOC 2007's do not, '000005').
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from input_pipeline.sources.local_files import find_root, manual_dir_of
from input_pipeline.sources.voc2007.builder import LISTS, Voc2007Detection, split_files

ROOTS = {"2007": ("VOC2007", "VOCdevkit/VOC2007"), "2012": ("VOC2012", "VOCdevkit/VOC2012")}

INSTRUCTIONS = """\
Extract VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar and
VOCtrainval_11-May-2012.tar into one folder and pass it as manual_dir (`python -m
input_pipeline.prepare --dataset voc0712_detection --data_dir DIR --manual_dir
FOLDER`); FOLDER must hold VOCdevkit/VOC2007/ and VOCdevkit/VOC2012/, each with
Annotations/, JPEGImages/ and ImageSets/Main/ (trainval.txt; test.txt for 2007)."""


class Voc0712Detection(Voc2007Detection):
    """voc0712_detection: VOC 2007 + 2012 trainval for training, VOC 2007 test."""

    name = "voc0712_detection"
    # The splits it can write, read without data by SourceKind.declared_splits.
    SPLITS = ("trainval", "test")
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}  # noqa: RUF012 (TFDS API)
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS

    def _split_generators(self, dl_manager) -> dict:
        manual = manual_dir_of(dl_manager, INSTRUCTIONS)
        roots = {year: find_root(manual, candidates, ("Annotations", "JPEGImages", LISTS),
                                 self.name, INSTRUCTIONS)
                 for year, candidates in ROOTS.items()}
        return {
            "trainval": self._generate_examples(
                [split_files(roots[year], "trainval", INSTRUCTIONS) for year in ROOTS]),
            "test": self._generate_examples([split_files(roots["2007"], "test",
                                                         INSTRUCTIONS)]),
        }
