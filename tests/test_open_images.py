"""open_images_labels reads Open Images' image-level layout from a local folder.

The fixture is a tiny copy of the official layout written here: the class
list (V6, with its header, and the older headerless form), human-verified
and machine label CSVs with the official names and header, the hierarchy
JSON (Entity root, a class under two parents, a `Part` edge), and 16x12
JPEGs in train/ and validation/. What the source stores is compared with
the labels worked out by hand from the rows written.
"""

import csv
import io
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from input_pipeline.errors import InputPipelineError
from input_pipeline.sources.core import DataSource
from input_pipeline.sources.local_files import LocalDataError
from input_pipeline.sources.open_images import files
from input_pipeline.sources.registry import open_source
from input_pipeline.stream import batches

CLASSES = [("/m/0bl9f", "Entity"), ("/m/0jbk", "Animal"), ("/m/04rky", "Mammal"),
           ("/m/0bt9lr", "Dog"), ("/m/01yrx", "Cat"), ("/m/0138tl", "Toy"),
           ("/m/0kmg4", "Teddy bear"), ("/m/011k07", "Tortoise"), ("/m/0k4j", "Car"),
           ("/m/083wq", "Wheel"), ("/m/0ch_cf", "Fish, ray-finned")]
MID = {display: mid for mid, display in CLASSES}
HIERARCHY = {"LabelName": "/m/0bl9f", "Subcategory": [
    {"LabelName": "/m/0jbk", "Subcategory": [
        {"LabelName": "/m/04rky", "Subcategory": [{"LabelName": "/m/0bt9lr"},
                                                  {"LabelName": "/m/01yrx"}]},
        {"LabelName": "/m/0kmg4"}]},
    {"LabelName": "/m/0138tl", "Subcategory": [{"LabelName": "/m/0kmg4"}]},
    {"LabelName": "/m/0k4j", "Part": [{"LabelName": "/m/083wq"}]},
    {"LabelName": "/m/083wq"}, {"LabelName": "/m/011k07"}, {"LabelName": "/m/0ch_cf"}]}

A, B, C = "000002b66c9c498e", "000002b97e5471a0", "000002c707c9895e"
MISSING, BROKEN, MACHINE_ONLY = "0000048549557964", "000004f4400f6ec5", "0000071d71a0a6f6"
UNLISTED, VAL = "00abcdef00000000", "001f5d6a1b4b2a3c"
HUMAN_TRAIN = [  # ImageID, Source, LabelName (display), Confidence
    (A, "verification", "Dog", "1"), (A, "verification", "Cat", "0"),
    (A, "verification", "Car", "0"), (B, "verification", "Teddy bear", "1"),
    (B, "verification", "Toy", "0"),  # a Teddy bear is a Toy: implied present
    (C, "verification", "Wheel", "1"), (C, "crowdsource-verification", "Wheel", "0"),
    (C, "verification", "Car", "0"), (MISSING, "verification", "Dog", "1"),
    (BROKEN, "verification", "Cat", "1")]
MACHINE_TRAIN = [(B, "machine", "Tortoise", "0.9"), (B, "machine", "Cat", "0.5"),
                 (C, "machine", "Car", "0.8"), (MACHINE_ONLY, "machine", "Cat", "0.6")]
HUMAN_VAL = [(VAL, "verification", "Cat", "1"), (VAL, "verification", "Dog", "0")]
# Worked out by hand: human verdicts overrule machine labels, machine labels of
# Confidence >= 0.7 count, ancestors follow Subcategory edges (not Part, not the root).
EXPECTED = {  # image: (labels as given, filled labels, verified negatives as given,
    #                  negatives with their descendants filled)
    A: ({"Dog"}, {"Dog", "Mammal", "Animal"}, {"Cat", "Car"}, {"Cat", "Car"}),
    B: ({"Teddy bear", "Tortoise"}, {"Teddy bear", "Animal", "Toy", "Tortoise"}, {"Toy"},
        {"Toy", "Teddy bear"}),
    C: ({"Wheel"}, {"Wheel"}, {"Car"}, {"Car"}),
    VAL: ({"Cat"}, {"Cat", "Mammal", "Animal"}, {"Dog"}, {"Dog"}),
}


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def write_labels(path: str, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "Source", "LabelName", "Confidence"])
        w.writerows((i, s, MID.get(n, n), c) for i, s, n, c in rows)


def write_open_images(manual: str, missing: bool = True, broken: bool = True,
                      unknown: bool = True, v6_header: bool = True) -> str:
    """The official layout: CSVs and JSON at the top, images in train/ and validation/."""
    for d in ("train", "validation"):
        os.makedirs(os.path.join(manual, d), exist_ok=True)
    with open(os.path.join(manual, "oidv6-class-descriptions.csv" if v6_header
                           else "class-descriptions.csv"), "w", newline="") as f:
        w = csv.writer(f)
        if v6_header:
            w.writerow(["LabelName", "DisplayName"])
        w.writerows(CLASSES)
    with open(os.path.join(manual, "bbox_labels_600_hierarchy.json"), "w") as f:
        json.dump(HIERARCHY, f)
    human = [r for r in HUMAN_TRAIN if (missing or r[0] != MISSING)
             and (broken or r[0] != BROKEN)]
    if unknown:
        human.append((A, "verification", "/m/0notaclass", "1"))
    write_labels(os.path.join(manual, "oidv6-train-annotations-human-imagelabels.csv"), human)
    write_labels(os.path.join(manual, "train-annotations-machine-imagelabels.csv"),
                 MACHINE_TRAIN)
    write_labels(os.path.join(manual, "oidv7-val-annotations-human-imagelabels.csv"),
                 HUMAN_VAL)
    for seed, image in enumerate((A, B, C, MACHINE_ONLY, UNLISTED)):
        with open(os.path.join(manual, "train", f"{image}.jpg"), "wb") as f:
            f.write(jpeg(seed))
    with open(os.path.join(manual, "train", f"{BROKEN}.jpg"), "wb") as f:
        f.write(jpeg(9)[:200])  # truncated mid-scan
    with open(os.path.join(manual, "validation", f"{VAL}.jpg"), "wb") as f:
        f.write(jpeg(7))
    return manual


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The human_machine and human configs built from one fixture."""
    root = tmp_path_factory.mktemp("oi")
    manual = write_open_images(str(root / "manual"))
    return {config: open_source(f"open_images_labels/{config}",
                                data_dir=str(root / "tfds"), manual_dir=manual)
            for config in ("human_machine", "human")}


def stored(source, split: str) -> dict[str, tuple[set[str], set[str]]]:
    """image_id -> (labels, negative_labels) as display names."""
    names = source.info.metadata["display_names"]
    out = {}
    for ex in tfds.as_numpy(source.read(split)):
        out[ex["image_id"].decode()] = ({names[i] for i in ex["labels"]},
                                        {names[i] for i in ex["negative_labels"]})
    return out


def test_positives_negatives_and_machine_threshold(built):
    got = stored(built["human_machine"], "train")
    assert got == {i: (EXPECTED[i][0], EXPECTED[i][2]) for i in (A, B, C)}
    assert stored(built["human_machine"], "validation") == {
        VAL: (EXPECTED[VAL][0], EXPECTED[VAL][2])}
    # Human labels only: B's machine Tortoise (0.9) is gone.
    human = stored(built["human"], "train")
    assert human[B] == ({"Teddy bear"}, {"Toy"}) and human[A] == got[A]


def test_missing_and_unreadable_images_are_counted_in_the_metadata(built):
    report = built["human_machine"].info.metadata["build_report"]["train"]
    assert report["missing_images"] == 1 and report["missing_ids"] == [MISSING]
    assert report["unreadable_images"] == 1
    assert report["unreadable"][0].startswith(f"{BROKEN}.jpg: ")
    assert report["examples"] == 3 and report["listed_images"] == 6
    assert report["images_without_labels"] == 1  # MACHINE_ONLY: its Cat is 0.6 < 0.7
    assert report["unlisted_images"] == 1  # UNLISTED
    assert report["unknown_label_rows"] == 1
    assert report["unknown_label_names"] == ["/m/0notaclass"]
    assert report["machine_labels_below_threshold"] == 2
    assert report["machine_labels_overruled_by_humans"] == 1  # C's Car
    assert report["conflicting_human_labels"] == 1  # C's Wheel: 1 and 0
    assert report["negatives_implied_present"] == 1  # B's Toy, above its Teddy bear
    human = built["human"].info.metadata["build_report"]["train"]
    assert (human["listed_images"], human["unlisted_images"]) == (5, 2)
    assert human["machine_labels_below_threshold"] == 0


def test_a_reloaded_builder_has_classes_hierarchy_and_report(built, tmp_path):
    first = built["human_machine"]
    again = DataSource("open_images_labels/human_machine", tfds.builder(
        "open_images_labels/human_machine", data_dir=first.builder.data_dir_root))
    assert again.builder.is_prepared()
    assert again.num_classes() == len(CLASSES)
    meta = again.info.metadata
    assert meta["class_names"] == [m for m, _ in CLASSES]
    assert meta["display_names"][-1] == "Fish, ray-finned"  # a quoted comma
    assert meta["build_report"] == first.info.metadata["build_report"]
    assert again.info.splits["train"].num_examples == 3


def test_hierarchy_fills_ancestors_through_the_pipeline(built):
    # Negatives fill descendants along Subcategory edges only: 'Car' is not
    # 'Wheel''s parent (a Part), so image C's negatives stay {'Car'}.
    from input_pipeline.pp.base import PPContext
    from input_pipeline.pp.builder import build_preprocess
    from input_pipeline.pp.registry import default_registry

    source = built["human_machine"]
    hierarchy = source.hierarchy()
    names = source.info.metadata["display_names"]
    teddy = names.index("Teddy bear")
    assert {names[p] for p in hierarchy.parents[teddy]} == {"Animal", "Toy"}
    pp = build_preprocess(
        "decode|resize(8)|value_range(-1, 1)|multi_hot"
        "|multi_hot(key='negative_labels', fill_ancestors=False, fill_descendants=True)"
        "|keep('image', 'labels', 'negative_labels', 'image_id')", default_registry(),
        PPContext(num_classes=source.num_classes(), hierarchy=hierarchy))
    for split in ("train", "validation"):
        ds, _ = batches.eval_dataset(source, split, pp, 4, shard=batches.HostShard(0, 1))
        batch = next(batches.HostIterator(ds))
        for k, image_id in enumerate(batch["image_id"][batch["_mask"]]):
            _, filled, _, negatives = EXPECTED[image_id.decode()]
            assert {names[i] for i in np.flatnonzero(batch["labels"][k])} == filled
            assert {names[i] for i in np.flatnonzero(batch["negative_labels"][k])} == negatives
        assert batch["image"].shape[1:] == (8, 8, 3)


def write_rotations(manual: str, rows) -> None:
    """The image-id file's layout (V6 columns), Rotation last."""
    with open(os.path.join(manual, "oidv6-train-images-with-labels-with-rotation.csv"), "w",
              newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "Subset", "OriginalURL", "OriginalLandingURL", "License",
                    "AuthorProfileURL", "Author", "Title", "OriginalSize", "OriginalMD5",
                    "Thumbnail300KURL", "Rotation"])
        w.writerows([i, "train", "", "", "", "", "", "", "0", "", "", r] for i, r in rows)


def test_rotation_file_turns_images_upright(tmp_path):
    manual = write_open_images(str(tmp_path / "manual"))
    # A turns a quarter counter-clockwise; B stays (0.0); C's orientation was lost (nan).
    write_rotations(manual, [(A, "90.0"), (B, "0.0"), (C, "nan"), (MISSING, "180.0")])
    pixels = {}
    for rotate in (True, False):
        source = open_source(f"open_images_labels/human/rotate={rotate}",
                             data_dir=str(tmp_path / f"tfds_{rotate}"),
                             manual_dir=manual)
        assert source.info.metadata["build_report"]["train"]["rotated_images"] == (
            1 if rotate else 0)
        pixels[rotate] = {ex["image_id"].decode(): ex["image"]
                          for ex in tfds.as_numpy(source.builder.as_dataset("train"))}
    original = pixels[False][A]
    assert original.shape == (12, 16, 3)
    turned = pixels[True][A]
    assert turned.shape == (16, 12, 3)
    # Counter-clockwise: the original's top row is the left column, read upwards.
    # Re-encoded as JPEG (noise pixels: a few levels off), far from any other turn.
    err = {k: np.abs(turned.astype(int) - np.rot90(original, k).astype(int)).mean()
           for k in (1, -1)}
    assert err[1] < 10 and err[-1] > 5 * err[1], err
    for image in (B, C):
        np.testing.assert_array_equal(pixels[True][image], pixels[False][image])


def test_a_bad_rotation_value_names_the_file_and_line(tmp_path):
    manual = write_open_images(str(tmp_path / "manual"))
    write_rotations(manual, [(B, "0"), (A, "45")])
    with pytest.raises(InputPipelineError, match=r"with-rotation\.csv:3: Rotation '45' is not 0, "):
        open_source("open_images_labels/human", data_dir=str(tmp_path / "tfds"),
                    manual_dir=manual)


def test_strict_mode_stops_on_a_missing_image(tmp_path):
    manual = write_open_images(str(tmp_path / "manual"))
    with pytest.raises(InputPipelineError, match=rf"1 listed images are not in .*train "
                                                 rf"\(e\.g\. {MISSING}\).*without strict"):
        open_source("open_images_labels/human/strict=True",
                    data_dir=str(tmp_path / "tfds"), manual_dir=manual)


def test_strict_mode_stops_on_an_unreadable_image(tmp_path):
    manual = write_open_images(str(tmp_path / "manual"), missing=False, unknown=False)
    with pytest.raises(InputPipelineError,
                       match=rf"{BROKEN}\.jpg cannot be read \(OSError: Truncated"):
        open_source("open_images_labels/human/strict=True",
                    data_dir=str(tmp_path / "tfds"), manual_dir=manual)


def test_class_descriptions_with_and_without_the_v6_header(tmp_path):
    for v6 in (True, False):
        manual = write_open_images(str(tmp_path / f"m{v6}"), v6_header=v6)
        layout = files.find_layout(manual)
        assert os.path.basename(layout.class_file) == (
            "oidv6-class-descriptions.csv" if v6 else "class-descriptions.csv")
        assert files.read_class_descriptions(layout.class_file) == (
            [m for m, _ in CLASSES], [d for _, d in CLASSES])
    assert sorted(layout.label_files) == ["train", "validation"]
    assert {k: len(v) for k, v in layout.label_files["train"].items()} == {
        "human": 1, "machine": 1}


def test_hierarchy_pairs_follow_subcategories_only(tmp_path):
    manual = write_open_images(str(tmp_path / "m"))
    index = {m: i for i, (m, _) in enumerate(CLASSES)}
    pairs = files.hierarchy_pairs(os.path.join(manual, "bbox_labels_600_hierarchy.json"),
                                  index)
    by_name = {(CLASSES[c][1], CLASSES[p][1]) for c, p in pairs}
    assert by_name == {("Mammal", "Animal"), ("Dog", "Mammal"), ("Cat", "Mammal"),
                       ("Teddy bear", "Animal"), ("Teddy bear", "Toy")}


def test_bad_files_are_named(tmp_path):
    manual = write_open_images(str(tmp_path / "m"))
    bad = os.path.join(manual, "oidv6-train-annotations-human-imagelabels.csv")
    with open(bad, "w") as f:
        f.write("ImageID,LabelName,Confidence\nx,/m/0jbk,1\n")
    layout = files.find_layout(manual)
    with pytest.raises(LocalDataError, match="header is .* not ImageID,Source,LabelName"):
        files.read_split_labels(layout.label_files["train"]["human"], (), {}, [], None)
    for name in ("challenge-2019-train-detection-human-imagelabels.csv",  # ignored
                 "train-annotations-human-imagelabels-extra.csv"):
        with open(os.path.join(manual, name), "w"):
            pass
    with pytest.raises(LocalDataError, match="imagelabels-extra.csv: cannot tell its split"):
        files.find_layout(manual)
    os.remove(os.path.join(manual, "oidv6-class-descriptions.csv"))
    with pytest.raises(LocalDataError, match="no class list"):
        files.find_layout(manual)


def test_prepare_label_statistics(built, monkeypatch, capsys):
    from input_pipeline import prepare

    data_dir = str(built["human_machine"].builder.data_dir_root)
    monkeypatch.setattr("sys.argv", ["prepare", "--dataset", "open_images_labels/human_machine",
                                     "--data_dir", data_dir])
    prepare.main()
    out = capsys.readouterr().out
    assert "classes: 11, hierarchy depth 3" in out and "split train: 3 examples" in out
    assert "train build report: {" in out and "'missing_images': 1" in out
    assert "train verified_negatives_per_image: 1.333" in out
    stats = prepare.label_statistics(built["human_machine"])
    # Labels as stored (before ancestor filling): A 1, B 2, C 1; negatives 2, 1, 1.
    assert stats["images"] == 3 and stats["labels_per_image"] == pytest.approx(4 / 3)
    assert stats["verified_negatives_per_image"] == pytest.approx(4 / 3)
    assert stats["classes_under_20_images"] == len(CLASSES)
