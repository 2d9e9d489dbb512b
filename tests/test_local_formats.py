"""Datasets from local folders: `image_folder:` (TFDS's ImageFolder, prepared) and
`image_labels:` (images + labels.csv / labels.jsonl), with fixtures in the real
layouts written here: tiny JPEGs made with PIL."""

import collections
import csv
import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from input_pipeline import prepare
from input_pipeline.keys import MASK_KEY
from input_pipeline.run_data import RunData
from input_pipeline.sources.local_files import LocalDataError
from input_pipeline.sources.local_formats import image_labels, parse_name
from input_pipeline.sources.registry import open_source


def write_jpeg(path, value: int, size=(12, 10)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def write_corrupt(path) -> None:
    """A JPEG cut short: the header reads, the image does not decode."""
    write_jpeg(path, 99, size=(40, 40))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def examples(source, split):
    """The split's examples by file name, images as the stored (encoded) bytes."""
    ds = source.read(split)
    return sorted(tfds.as_numpy(ds), key=lambda ex: ex["image/filename"])


# -- image_folder -------------------------------------------------------------

FOLDER = {"train": {"tulip": 3, "daisy": 4, "rose": 2}, "test": {"daisy": 1, "rose": 2,
                                                                 "zinnia": 1}}


def make_image_folder(root) -> dict[str, list[tuple[str, str]]]:
    """root/<split>/<class>/<n>.jpg (plus a .png and a non-image file);
    {split: [(relative path, class)]}."""
    files = collections.defaultdict(list)
    for split, classes in FOLDER.items():
        for c, n in classes.items():
            for i in range(n):
                name = f"{split}/{c}/{i}.jpg"
                write_jpeg(os.path.join(root, name), len(files[split]) + 100 * len(split))
                files[split].append((name, c))
    png = os.path.join(root, "train/tulip/extra.png")
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(png)
    files["train"].append(("train/tulip/extra.png", "tulip"))
    open(os.path.join(root, "train/daisy/README.txt"), "w").write("not an image")
    return files


def test_image_folder_classes_labels_and_splits_are_tfds_imagefolders(tmp_path):
    root = tmp_path / "flowers"
    files = make_image_folder(str(root))
    source = open_source(f"image_folder:{root}", str(tmp_path / "tfds"))
    names = source.info.features["label"].names
    # TFDS's own reader of the folder is the reference for the class order.
    assert names == tfds.folder_dataset.ImageFolder(str(root)).info.features["label"].names
    assert names == ["daisy", "rose", "tulip", "zinnia"]  # sorted, over every split
    assert source.info.metadata["class_names"] == names
    assert source.num_classes() == 4
    for split, want in files.items():
        got = examples(source, split)
        assert source.info.splits[split].num_examples == len(want)
        assert sorted((ex["image/filename"].decode(), names[ex["label"]]) for ex in got) \
            == sorted(want)
        for ex in got:  # the file, unchanged (no re-encoding)
            assert ex["image"] == (root / ex["image/filename"].decode()).read_bytes()
    # The pipeline's per-host slices work on the prepared copy.
    halves = [sum(1 for _ in source.builder.as_dataset(split=s))
              for s in tfds.even_splits("train", n=2)]
    assert sum(halves) == 10 and min(halves) == 5


def test_image_folder_counts_a_corrupt_image_and_strict_stops_on_it(tmp_path):
    root = tmp_path / "flowers"
    make_image_folder(str(root))
    write_corrupt(str(root / "train/rose/broken.jpg"))
    source = open_source(f"image_folder:{root}", str(tmp_path / "tfds"))
    assert source.info.splits["train"].num_examples == 10
    report = source.info.metadata["skipped_images"]["train"]
    assert (report["missing"], report["unreadable"]) == (0, 1)
    assert report["examples"][0].startswith("train/rose/broken.jpg: unreadable")
    # Read back from the prepared copy: the count is kept.
    again = open_source(f"image_folder:{root}", str(tmp_path / "tfds"))
    assert again.info.metadata["skipped_images"]["train"]["unreadable"] == 1
    with pytest.raises(LocalDataError, match="skipped images"):
        open_source(f"image_folder:{root}?strict=true", str(tmp_path / "tfds"))
    with pytest.raises(LocalDataError, match=r"train/rose/broken.jpg of split 'train' is "
                                             r"unreadable"):
        open_source(f"image_folder:{root}?strict=true", str(tmp_path / "tfds2"))


def test_a_changed_folder_gets_a_new_prepared_copy(tmp_path):
    root = tmp_path / "flowers"
    make_image_folder(str(root))
    first = open_source(f"image_folder:{root}", str(tmp_path / "tfds"))
    write_jpeg(str(root / "train/rose/new.jpg"), 5)
    second = open_source(f"image_folder:{root}", str(tmp_path / "tfds"))
    assert second.builder.data_dir != first.builder.data_dir
    assert second.info.splits["train"].num_examples == 11


def test_bad_names_are_explained(tmp_path):
    assert parse_name("image_labels:/a/b?strict=1") == ("image_labels", "/a/b", {"strict": True})
    with pytest.raises(LocalDataError, match="unknown option shuffle=yes"):
        parse_name("image_folder:/a?shuffle=yes")
    with pytest.raises(LocalDataError, match="is not a folder"):
        open_source(f"image_folder:{tmp_path}/nowhere", str(tmp_path))
    with pytest.raises(LocalDataError, match="no split folder with labels.csv"):
        open_source(f"image_labels:{tmp_path}", str(tmp_path))


# -- image_labels --------------------------------------------------------------

ROWS = {"train": [("a.jpg", ["cat"]), ("sub/b.jpg", ["dog", "cat"]), ("c.jpg", []),
                  ("d.jpg", ["traffic light"]), ("e.jpg", ["dog"])],
        "val": [("f.jpg", ["cat", "traffic light"])]}


def write_images(root, rows=ROWS) -> None:
    for split, items in rows.items():
        for i, (name, _) in enumerate(items):
            write_jpeg(os.path.join(root, split, name), 10 * i + len(split))


def write_labels(root, fmt: str, rows=ROWS) -> None:
    for split, items in rows.items():
        os.makedirs(os.path.join(root, split), exist_ok=True)
        if fmt == "csv":
            with open(os.path.join(root, split, "labels.csv"), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["image", "labels"])
                w.writerows([name, "|".join(labels)] for name, labels in items)
        else:
            with open(os.path.join(root, split, "labels.jsonl"), "w") as f:
                for name, labels in items:
                    f.write(json.dumps({"image": name, "labels": labels}) + "\n")


def test_csv_and_jsonl_give_identical_examples_with_synthetic_jfts_features(
        tmp_path, tiny_source):
    got = {}
    for fmt in ("csv", "jsonl"):
        root = tmp_path / fmt
        write_images(str(root))
        write_labels(str(root), fmt)
        got[fmt] = open_source(f"image_labels:{root}", str(tmp_path / "tfds"))
    csv_b, jsonl_b = got["csv"], got["jsonl"]
    names = ["cat", "dog", "traffic light"]  # every name in the files, sorted
    assert csv_b.info.metadata["class_names"] == names
    for split, rows in ROWS.items():
        a, b = examples(csv_b, split), examples(jsonl_b, split)
        assert len(a) == len(b) == len(rows)
        for x, y in zip(a, b, strict=True):
            assert x.keys() == y.keys()
            for k in x:
                np.testing.assert_array_equal(x[k], y[k], err_msg=k)
        want = {name: sorted(names.index(n) for n in labels) for name, labels in rows}
        assert {ex["image/filename"].decode(): ex["labels"].tolist() for ex in a} == want
        ids = {ex["image/filename"].decode(): ex["image_id"] for ex in a}
        assert ids == {name: i for i, (name, _) in enumerate(rows)}  # line order
    # The keys and dtypes a pre-training config reads from synthetic_jft.
    ref = tiny_source.info.features
    for key in ("image", "image_id", "labels"):
        assert type(csv_b.info.features[key]) is type(ref[key])
        assert csv_b.info.features[key].dtype == ref[key].dtype
    assert isinstance(csv_b.info.features["labels"].feature, tfds.features.ClassLabel)


def test_hierarchy_fills_ancestors_from_pairs_or_open_images_json(tmp_path):
    rows = {"train": [("a.jpg", ["cat"]), ("b.jpg", ["dog", "car"]), ("c.jpg", ["car"])]}
    want_names = ["animal", "car", "cat", "dog", "thing", "vehicle"]
    # Ancestors by hand: cat, dog -> animal -> thing; car -> vehicle -> thing.
    want = {"a.jpg": {"cat", "animal", "thing"},
            "b.jpg": {"dog", "animal", "thing", "car", "vehicle"},
            "c.jpg": {"car", "vehicle", "thing"}}
    tree = {"LabelName": "Entity", "Subcategory": [{"LabelName": "thing", "Subcategory": [
        {"LabelName": "animal", "Subcategory": [{"LabelName": "cat"}, {"LabelName": "dog"}]},
        {"LabelName": "vehicle", "Subcategory": [{"LabelName": "car"}]}]}]}
    for kind in ("txt", "json"):
        root = tmp_path / kind
        write_images(str(root), rows)
        write_labels(str(root), "csv", rows)
        if kind == "txt":
            (root / "hierarchy.txt").write_text(
                "# child parent\ncat animal\ndog animal\ncar vehicle\nanimal thing\n"
                "vehicle thing\n")
        else:
            (root / "hierarchy.json").write_text(json.dumps(tree))
        source = open_source(f"image_labels:{root}", str(tmp_path / "tfds"))
        names = source.info.features["labels"].feature.names
        assert names == want_names  # hierarchy-only classes (animal, ...) are classes
        got = {ex["image/filename"].decode(): {names[i] for i in ex["labels"]}
               for ex in examples(source, "train")}
        assert got == want, kind
        hierarchy = source.hierarchy()  # for input.hierarchy = "dataset"
        assert {names[p] for p in hierarchy.parents[names.index("dog")]} == {"animal"}
        assert hierarchy.parents[names.index("thing")] == ()


def test_class_list_file_orders_ids_and_rejects_unknown_labels(tmp_path):
    root = tmp_path / "photos"
    write_images(str(root))
    write_labels(str(root), "jsonl")
    (root / "classes.txt").write_text("traffic light\ndog\ncat\nbird\n")
    source = open_source(f"image_labels:{root}", str(tmp_path / "tfds"))
    assert source.info.features["labels"].feature.names == ["traffic light", "dog", "cat",
                                                             "bird"]
    first = {ex["image/filename"].decode(): ex["labels"].tolist()
             for ex in examples(source, "train")}
    assert first["sub/b.jpg"] == [1, 2] and first["d.jpg"] == [0]
    (root / "classes.txt").write_text("dog\ncat\n")
    with pytest.raises(LocalDataError, match=r"2 labels are not in .*classes.txt: "
                                             r"'traffic light' \(.*train/labels.jsonl:4\)"):
        open_source(f"image_labels:{root}", str(tmp_path / "tfds"))


def test_missing_and_corrupt_images_are_counted_and_strict_stops(tmp_path):
    root = tmp_path / "photos"
    write_images(str(root))
    write_labels(str(root), "csv")
    os.remove(root / "train/e.jpg")
    write_corrupt(str(root / "train/c.jpg"))
    source = open_source(f"image_labels:{root}", str(tmp_path / "tfds"))
    assert source.info.splits["train"].num_examples == 3
    report = source.info.metadata["skipped_images"]["train"]
    assert (report["missing"], report["unreadable"]) == (1, 1)
    assert source.info.metadata["skipped_images"]["val"]["missing"] == 0
    assert {ex["image/filename"].decode() for ex in examples(source, "train")} == {
        "a.jpg", "sub/b.jpg", "d.jpg"}
    with pytest.raises(LocalDataError, match="image train/c.jpg of split 'train' is unreadable"):
        open_source(f"image_labels:{root}?strict=true", str(tmp_path / "tfds2"))


def test_malformed_label_files_are_named(tmp_path):
    root = tmp_path / "photos"
    (root / "train").mkdir(parents=True)
    (root / "train/labels.csv").write_text("file,tags\na.jpg,cat\n")
    with pytest.raises(LocalDataError, match="needs the columns image,labels"):
        image_labels.LocalImageLabels(str(root))
    (root / "train/labels.csv").write_text("image,labels\na.jpg,cat\na.jpg,dog\n")
    with pytest.raises(LocalDataError, match=r"a.jpg is listed twice \(.*:2 and .*:3\)"):
        image_labels.LocalImageLabels(str(root))
    (root / "train/labels.jsonl").write_text("")
    with pytest.raises(LocalDataError, match="has both labels.csv and labels.jsonl"):
        image_labels.LocalImageLabels(str(root))
    os.remove(root / "train/labels.csv")
    (root / "train/labels.jsonl").write_text('{"image": "a.jpg", "labels": "cat"}\n')
    with pytest.raises(LocalDataError, match=r"labels.jsonl:1 should be"):
        image_labels.LocalImageLabels(str(root))


# -- statistics ---------------------------------------------------------------

def test_prepare_statistics_match_a_numpy_count(tmp_path):
    rng = np.random.default_rng(0)
    num_classes, n = 30, 160
    # Long-tailed: class 0 on ~70% of the images (over 100), the rest Zipf-like
    # (class k drawn with weight 1/k), so both thresholds have classes on each side.
    p = 1 / np.arange(1, num_classes)
    rows = []
    for i in range(n):
        labels = rng.choice(np.arange(1, num_classes), size=rng.integers(0, 3),
                            replace=False, p=p / p.sum()).tolist()
        labels += [0] if rng.random() < 0.7 else []
        rows.append((f"{i}.jpg", [f"c{j:02d}" for j in labels]))
    write_images(str(tmp_path / "root"), {"train": rows})
    write_labels(str(tmp_path / "root"), "csv", {"train": rows})
    (tmp_path / "root/classes.txt").write_text("\n".join(f"c{j:02d}" for j in
                                                          range(num_classes)))
    source = open_source(f"image_labels:{tmp_path / 'root'}", str(tmp_path / "tfds"))
    stats = prepare.label_statistics(source, sample=None)

    hot = np.zeros((n, num_classes), np.float64)
    for i, (_, labels) in enumerate(rows):
        hot[i, [int(x[1:]) for x in labels]] = 1
    counts = hot.sum(0)
    assert counts.max() >= 100 and (counts < 20).any()  # the thresholds are exercised
    nonzero = np.sort(counts[counts > 0])[::-1]
    slope = np.polyfit(np.log(np.arange(1, len(nonzero) + 1)), np.log(nonzero), 1)[0]
    assert stats["images"] == n
    assert stats["labels_per_image"] == pytest.approx(hot.sum() / n)
    assert stats["classes_under_100_images"] == int((counts < 100).sum())
    assert stats["classes_under_20_images"] == int((counts < 20).sum())
    assert stats["rank_frequency_slope"] == pytest.approx(slope)


def test_prepare_statistics_of_a_single_label_folder(tmp_path):
    root = tmp_path / "flowers"
    make_image_folder(str(root))
    source = open_source(f"image_folder:{root}", str(tmp_path / "tfds"))
    stats = prepare.label_statistics(source, "train")
    counts = np.array([4, 2, 4, 0])  # daisy, rose, tulip (3 + png), zinnia (test only)
    assert stats["images"] == 10 and stats["labels_per_image"] == 1.0
    assert stats["classes_under_20_images"] == 4
    nonzero = np.sort(counts[counts > 0])[::-1]
    slope = np.polyfit(np.log(np.arange(1, 4)), np.log(nonzero), 1)[0]
    assert stats["rank_frequency_slope"] == pytest.approx(slope)


# -- through the trainer's pipeline ----------------------------------------------
# A training step on top costs 25-55 s here (compiling a ResNet on 2 shared
# cores); what these configs add is the data side, checked without compiling.

def test_transfer_config_feeds_an_image_folder_to_the_trainer(tmp_path):
    import jax

    from big_vision_like import mesh as mesh_lib
    from big_vision_like import trainer
    from configs.transfer import image_folder

    root = tmp_path / "flowers"
    make_image_folder(str(root))
    config = image_folder.get_config(f"{root},tiny")
    config.input.data.data_dir = str(tmp_path / "tfds")
    mesh = mesh_lib.make_mesh(8, 1)
    data = RunData(config, mesh)
    assert data.num_classes == 4  # the folder's, not written in the config
    task = trainer.build_task(config, mesh, data.num_classes)
    params = jax.eval_shape(lambda: task.init(jax.random.key(0), (32, 32, 3)))["params"]
    assert params["head"]["kernel"].shape[-1] == 4
    with data.train_iterator(None) as it:
        batch = {k: np.asarray(v) for k, v in next(it).items()}
    assert batch["image"].shape == (16, 32, 32, 3)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    np.testing.assert_array_equal(batch["labels"].sum(1), 1)  # one-hot
    assert batch["labels"][:, 3].sum() == 0  # zinnia has no training image
    # The test evaluator sees every test image once, with its folder's class.
    ev = config.evals.test
    got = sum(np.asarray(b["labels"])[np.asarray(b[MASK_KEY])].sum(0)
              for b in data.eval_batches(ev.data, ev.pp, 16))
    np.testing.assert_array_equal(got, [1, 2, 0, 1])  # daisy, rose, tulip, zinnia
    # Few-shot and probe evaluators read integer labels.
    ev = config.evals.fewshot
    got = np.concatenate([np.asarray(b["label"])[np.asarray(b[MASK_KEY])]
                          for b in data.eval_batches(ev.data_train, ev.pp, 16)])
    np.testing.assert_array_equal(np.bincount(got, minlength=4), [4, 2, 4, 0])


def test_pretraining_config_swaps_in_image_labels(tmp_path):
    from big_vision_like import mesh as mesh_lib
    from configs import image_labels as image_labels_config

    rows = {"train": [("a.jpg", ["cat"]), ("b.jpg", ["dog", "car"])],
            "val": [("c.jpg", ["car"]), ("d.jpg", [])]}
    root = tmp_path / "photos"
    write_images(str(root), rows)
    write_labels(str(root), "jsonl", rows)
    (root / "hierarchy.txt").write_text("cat animal\ndog animal\n")
    config = image_labels_config.get_config(str(root))
    config.input.data.data_dir = str(tmp_path / "tfds")
    config.batch_size = 16
    data = RunData(config, mesh_lib.make_mesh(8, 1))
    names = ["animal", "car", "cat", "dog"]
    assert data.num_classes == 4 and data.pp_ctx.hierarchy is not None
    hot = lambda *labels: [float(n in labels) for n in names]
    with data.train_iterator(None) as it:
        batch = {k: np.asarray(v) for k, v in next(it).items()}
    assert batch["image"].shape == (16, 64, 64, 3)
    assert {tuple(r) for r in batch["labels"]} == {
        tuple(hot("cat", "animal")), tuple(hot("dog", "animal", "car"))}
    ev = config.evals.fasteval
    got = [np.asarray(b["labels"])[np.asarray(b[MASK_KEY])]
           for b in data.eval_batches(ev.data, ev.pp, 16)]
    # Stored labels already hold their ancestors (the evaluators do not fill them).
    assert sorted(map(tuple, np.concatenate(got).tolist())) == sorted(
        [tuple(hot("car")), tuple(hot())])
