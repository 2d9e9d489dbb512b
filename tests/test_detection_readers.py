"""coco_detection and voc2007_detection read the real datasets' layouts.

Fixtures are tiny copies of the official layouts written here (JPEGs, a COCO
instances json with COCO's 80 categories, VOC annotation xmls and
ImageSets/Main lists); what the builders store is compared with a float64
NumPy version of each dataset's box convention (COCO's [x, y, w, h]; VOC's
1-based inclusive pixels, as TFDS's own voc builder reads them).
"""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from input_pipeline.errors import InputPipelineError
from input_pipeline.sources.coco_detection.builder import CATEGORIES
from input_pipeline.sources.registry import open_source

# --- COCO instances ---------------------------------------------------------

COCO_IMAGES = {"train2017": {9: (20, 30), 25: (16, 12)},
               "val2017": {139: (24, 24), 285: (16, 20)}}


def instance(ann_id, image_id, category_id, bbox, crowd=False):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id,
            "bbox": bbox, "area": float(bbox[2] * bbox[3] * 0.6), "iscrowd": int(crowd),
            "segmentation": ({"counts": [0, 4], "size": [4, 1]} if crowd
                             else [[0, 0, 1, 1, 1, 0]])}


COCO_ANNS = {
    "train2017": [instance(1, 9, 1, [2.5, 3.0, 10.0, 12.0]),
                  instance(2, 9, 90, [0.0, 0.0, 30.0, 20.0], crowd=True),
                  instance(3, 25, 13, [1.0, 1.0, 4.0, 5.5])],
    # 285 has no objects (kept: COCO's AP counts detections on it); the second
    # box of 139 pokes past the right border.
    "val2017": [instance(4, 139, 44, [1.0, 2.0, 5.0, 6.0]),
                instance(5, 139, 18, [20.0, 4.0, 4.5, 8.0])],
}


def write_coco(manual: str) -> dict:
    rng = np.random.default_rng(0)
    categories = [{"id": i, "name": n, "supercategory": "x"} for i, n in CATEGORIES]
    os.makedirs(os.path.join(manual, "annotations"), exist_ok=True)
    jsons = {}
    for folder, sizes in COCO_IMAGES.items():
        os.makedirs(os.path.join(manual, folder))
        records = []
        for image_id, (h, w) in sizes.items():
            name = f"{image_id:012d}.jpg"
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
                os.path.join(manual, folder, name))
            records.append({"id": image_id, "file_name": name, "height": h, "width": w,
                            "license": 1, "coco_url": "", "date_captured": ""})
        # Categories in the file's own (shuffled) order: labels follow ids.
        data = {"info": {}, "licenses": [], "images": records[::-1],
                "annotations": COCO_ANNS[folder],
                "categories": [categories[i] for i in rng.permutation(80)]}
        with open(os.path.join(manual, "annotations", f"instances_{folder}.json"),
                  "w") as f:
            json.dump(data, f)
        jsons[folder] = data
    return jsons


def read_split(source, split: str) -> list[dict]:
    decoders = {"image": tfds.decode.SkipDecoding()}
    return list(tfds.as_numpy(source.builder.as_dataset(split, decoders=decoders)))


def test_coco_boxes_labels_crowd_and_category_ids(tmp_path):
    write_coco(str(tmp_path / "manual"))
    source = open_source("coco_detection", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(tmp_path / "manual"))
    meta = source.info.metadata
    assert meta["category_ids"] == sorted(i for i, _ in CATEGORIES)
    assert len(meta["class_names"]) == 80 == source.num_classes()
    names = source.info.features["objects"]["label"].names
    assert names == meta["class_names"] and names[0] == "person" and names[-1] == "toothbrush"
    for split, folder in (("train", "train2017"), ("val", "val2017")):
        examples = {int(ex["image_id"]): ex for ex in read_split(source, split)}
        assert sorted(examples) == sorted(COCO_IMAGES[folder])  # empty images too
        for image_id, ex in examples.items():
            h, w = COCO_IMAGES[folder][image_id]
            assert (ex["height"], ex["width"]) == (h, w)
            anns = [a for a in COCO_ANNS[folder] if a["image_id"] == image_id]
            obj = ex["objects"]
            np.testing.assert_array_equal(obj["id"], [a["id"] for a in anns])
            x, y, bw, bh = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4).T
            box = np.clip(np.stack([y / h, x / w, (y + bh) / h, (x + bw) / w], 1), 0, 1)
            np.testing.assert_allclose(obj["bbox"], box.reshape(-1, 4), rtol=1e-6)
            # Back to COCO's category ids through the metadata.
            assert [meta["category_ids"][i] for i in obj["label"]] == [
                a["category_id"] for a in anns]
            np.testing.assert_allclose(obj["area"], [a["area"] for a in anns], rtol=1e-6)
            np.testing.assert_array_equal(obj["is_crowd"], [a["iscrowd"] for a in anns])
    train = {int(ex["image_id"]): ex for ex in read_split(source, "train")}
    assert train[9]["objects"]["is_crowd"].tolist() == [False, True]
    assert train[9]["objects"]["label"].tolist() == [0, 79]  # ids 1 and 90
    assert train[25]["objects"]["label"].tolist() == [11]  # id 13: 12 is unused
    val = {int(ex["image_id"]): ex for ex in read_split(source, "val")}
    assert val[139]["objects"]["bbox"][1, 3] == 1.0  # clipped at the border
    assert val[285]["objects"]["bbox"].shape == (0, 4)


def coco_error(tmp_path, manual, name: str = "tfds") -> str:
    with pytest.raises(InputPipelineError) as e:
        open_source("coco_detection", data_dir=str(tmp_path / name),
                    manual_dir=str(manual))
    return str(e.value)


def test_coco_missing_and_malformed_files_are_named(tmp_path):
    manual = tmp_path / "manual"
    write_coco(str(manual))
    os.remove(manual / "val2017" / "000000000285.jpg")
    message = coco_error(tmp_path, manual, "a")
    assert "val2017/000000000285.jpg" in message and "missing" in message

    write_coco(str(tmp_path / "m2"))
    path = tmp_path / "m2" / "annotations" / "instances_val2017.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # truncated download
    message = coco_error(tmp_path, tmp_path / "m2", "b")
    assert "instances_val2017.json cannot be read" in message

    data = json.loads(text)
    data["annotations"][0]["category_id"] = 12  # not a COCO 2017 category
    path.write_text(json.dumps(data))
    message = coco_error(tmp_path, tmp_path / "m2", "c")
    assert "instances_val2017.json" in message and "category 12" in message

    data = json.loads(text)
    del data["annotations"][1]["bbox"]
    path.write_text(json.dumps(data))
    message = coco_error(tmp_path, tmp_path / "m2", "d")
    assert "instances_val2017.json is not a COCO instances file" in message
    assert "'bbox'" in message

    for case, (field, value, want) in enumerate((
            ("bbox", [1.0, "2", 5.0, 6.0], "has bbox [1.0, '2', 5.0, 6.0], not [x, y, width, "
                                           "height] of finite numbers"),
            ("bbox", [1.0, 2.0, float("nan"), 6.0], "has bbox [1.0, 2.0, nan, 6.0], not"),
            ("bbox", [1.0, 2.0, -5.0, 6.0], "has bbox [1.0, 2.0, -5.0, 6.0] with a negative"),
            ("area", float("inf"), "has area inf, not a finite number >= 0"))):
        data = json.loads(text)
        data["annotations"][0][field] = value
        path.write_text(json.dumps(data))
        message = coco_error(tmp_path, tmp_path / "m2", f"box{case}")
        assert f"instances_val2017.json: annotation 4 {want}" in message, message

    data = json.loads(text)
    data["categories"] = data["categories"][:1]  # e.g. person_keypoints_val2017.json
    path.write_text(json.dumps(data))
    message = coco_error(tmp_path, tmp_path / "m2", "e")
    assert "instances_val2017.json has categories" in message and "80" in message

    os.remove(path)
    message = coco_error(tmp_path, tmp_path / "m2", "f")
    assert "instances_val2017.json" in message and "missing" in message


# --- VOC 2007 ---------------------------------------------------------------

# id -> (height, width, [(name, xmin, ymin, xmax, ymax, difficult, truncated)])
VOC_ANNS = {
    "000005": (20, 30, [("chair", 3, 4, 12, 15, 0, 0), ("chair", 1, 1, 30, 20, 1, 1)]),
    "000007": (16, 24, [("car", 2, 3, 20, 14, 0, 1)]),
    "000009": (18, 18, [("horse", 5, 6, 10, 17, 0, 0), ("person", 1, 2, 3, 4, 0, 0),
                        ("tvmonitor", 7.0, 8.0, 9.0, 10.0, 0, 0)]),
    "000001": (12, 14, [("dog", 4, 2, 14, 12, 1, 0)]),
}
VOC_SPLITS = {"train": ["000005", "000009"], "val": ["000007"],
              "trainval": ["000005", "000007", "000009"], "test": ["000001"]}
VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def voc_xml(image_id: str, anns: dict | None = None) -> str:
    """An annotation as the VOC 2007 devkit writes it."""
    h, w, objects = (anns or VOC_ANNS)[image_id]
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>{t}</truncated>"
        f"<difficult>{d}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for n, x0, y0, x1, y1, d, t in objects)
    return (f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
            "<source><database>The VOC2007 Database</database></source>"
            f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>"
            f"<segmented>0</segmented>{objs}</annotation>")


def write_voc(manual: str, test: bool = True, year: str = "2007", anns: dict | None = None,
              splits: dict | None = None) -> str:
    root = os.path.join(manual, "VOCdevkit", f"VOC{year}")
    anns, splits = anns or VOC_ANNS, splits or VOC_SPLITS
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    rng = np.random.default_rng(0)
    for image_id, (h, w, _) in anns.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            os.path.join(root, "JPEGImages", f"{image_id}.jpg"))
        with open(os.path.join(root, "Annotations", f"{image_id}.xml"), "w") as f:
            f.write(voc_xml(image_id, anns))
    for split, ids in splits.items():
        if split != "test" or test:
            with open(os.path.join(root, "ImageSets", "Main", f"{split}.txt"), "w") as f:
                f.write("\n".join(ids) + "\n")
    return root


@pytest.mark.parametrize("folder_itself", [False, True])
def test_voc2007_boxes_labels_flags_and_splits(tmp_path, folder_itself):
    root = write_voc(str(tmp_path / "manual"))
    source = open_source(
        "voc2007_detection", data_dir=str(tmp_path / "tfds"),
        manual_dir=root if folder_itself else str(tmp_path / "manual"))
    assert source.info.metadata["class_names"] == VOC_CLASSES
    assert source.info.features["objects"]["label"].names == VOC_CLASSES
    assert {s: v.num_examples for s, v in source.info.splits.items()} == {
        s: len(ids) for s, ids in VOC_SPLITS.items()}
    for split, ids in VOC_SPLITS.items():
        examples = {ex["image_id"].decode(): ex for ex in read_split(source, split)}
        assert sorted(examples) == sorted(ids)
        for image_id, ex in examples.items():
            h, w, objects = VOC_ANNS[image_id]
            assert (ex["height"], ex["width"]) == (h, w)
            obj = ex["objects"]
            _, x0, y0, x1, y1, d, t = (np.array(c) for c in zip(*objects))
            x0, y0, x1, y1 = (np.asarray(v, np.float64) for v in (x0, y0, x1, y1))
            # TFDS's voc: (ymin - 1) / h, (xmin - 1) / w, ymax / h, xmax / w.
            want = np.stack([(y0 - 1) / h, (x0 - 1) / w, y1 / h, x1 / w], 1)
            np.testing.assert_allclose(obj["bbox"], want, rtol=1e-6)
            assert [VOC_CLASSES[i] for i in obj["label"]] == [o[0] for o in objects]
            np.testing.assert_array_equal(obj["is_difficult"], d.astype(bool))
            np.testing.assert_array_equal(obj["is_truncated"], t.astype(bool))
            # In pixels: the normalised box's extent times the image size.
            np.testing.assert_allclose(
                obj["area"], (want[:, 2] - want[:, 0]) * h * (want[:, 3] - want[:, 1]) * w,
                rtol=1e-5)
    # The full-image 'difficult' chair covers the image exactly.
    ex = {e["image_id"].decode(): e for e in read_split(source, "train")}["000005"]
    np.testing.assert_allclose(ex["objects"]["bbox"][1], [0, 0, 1, 1])


def test_voc2007_without_test_archive_and_bad_files_are_named(tmp_path):
    root = write_voc(str(tmp_path / "manual"), test=False)
    source = open_source("voc2007_detection", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(tmp_path / "manual"))
    assert sorted(source.info.splits) == ["train", "trainval", "val"]

    def error(name: str) -> str:
        with pytest.raises(InputPipelineError) as e:
            open_source("voc2007_detection", data_dir=str(tmp_path / name),
                        manual_dir=str(tmp_path / "manual"))
        return str(e.value)

    xml = os.path.join(root, "Annotations", "000007.xml")
    good = voc_xml("000007")
    with open(xml, "w") as f:
        f.write(good.replace("<name>car</name>", "<name>truck</name>"))
    message = error("a")
    assert "000007.xml" in message and "'truck'" in message

    with open(xml, "w") as f:
        f.write(good[:100])
    assert "000007.xml cannot be read" in error("b")

    with open(xml, "w") as f:
        f.write(good.replace("<xmax>20</xmax>", ""))
    assert "000007.xml is not a VOC annotation" in error("c")

    with open(xml, "w") as f:
        f.write(good.replace("<height>16</height>", "<height>17</height>"))
    message = error("d")
    assert "000007.jpg is 16x24" in message and "000007.xml says 17x24" in message

    os.remove(xml)
    message = error("e")
    assert "000007.xml" in message and "missing" in message and "val.txt" in message
    os.remove(os.path.join(root, "ImageSets", "Main", "train.txt"))
    assert "train.txt" in error("f")


def test_coco_and_voc_examples_feed_the_detection_eval_pp(tmp_path):
    """Reader and pp meet: the dataset's own flags and ids reach the packed
    targets, and the ground truth comes back in the stored (original) boxes."""
    import tensorflow as tf

    from input_pipeline.keys import SEED_KEY
    from input_pipeline.pp.base import PPContext
    from input_pipeline.pp.builder import build_preprocess
    from input_pipeline.pp.registry import default_registry

    b = "boxes='objects/bbox'"
    spec = (f"decode|resize_aspect(40, 64, {b})|pad_to(64, {b})|central_crop(64, {b})"
            "|value_range(-1, 1)|detection_pack(4)")
    pp = build_preprocess(spec, default_registry(), PPContext())
    write_coco(str(tmp_path / "coco"))
    write_voc(str(tmp_path / "voc"))
    flagged = 0
    for name, manual, flag, gt_flag in (
            ("coco_detection", "coco", "is_crowd", "gt_iscrowd"),
            ("voc2007_detection", "voc", "is_difficult", "gt_difficult")):
        source = open_source(name, data_dir=str(tmp_path / "tfds"),
                             manual_dir=str(tmp_path / manual))
        ds = source.read("train")
        for ex in ds:
            out = pp.rest(pp.decode_stage({**ex, SEED_KEY: tf.constant([0, 0], tf.int64)}))
            obj = {k: v.numpy() for k, v in ex["objects"].items()}
            k = len(obj["label"])
            assert out["image"].shape == (64, 64, 3)
            np.testing.assert_allclose(out["gt_boxes"][:k], obj["bbox"], atol=1e-6)
            np.testing.assert_array_equal(out["gt_classes"][:k], obj["label"])
            np.testing.assert_array_equal(out[gt_flag][:k], obj[flag])
            flagged += int(obj[flag].sum())
            np.testing.assert_allclose(out["gt_areas"][:k], obj["area"])
            np.testing.assert_array_equal(out["orig_hw"], [ex["height"], ex["width"]])
            image_id = ex["image_id"].numpy()
            assert out["image_id"].numpy() == int(image_id)  # VOC's '000005' -> 5
    assert flagged == 2  # COCO's crowd region and VOC's difficult chair


# VOC 2012's ids carry their year; it has no public test split.
VOC12_ANNS = {"2008_000002": (14, 22, [("cat", 2, 2, 20, 12, 0, 0)]),
              "2008_000003": (10, 10, [("sofa", 1, 1, 10, 10, 0, 1)])}
VOC12_SPLITS = {"train": ["2008_000002"], "val": ["2008_000003"],
                "trainval": ["2008_000002", "2008_000003"]}


def test_voc0712_trains_on_both_years_trainval_and_tests_on_2007(tmp_path):
    manual = str(tmp_path / "manual")
    write_voc(manual)
    write_voc(manual, year="2012", anns=VOC12_ANNS, splits=VOC12_SPLITS)
    source = open_source("voc0712_detection", data_dir=str(tmp_path / "tfds"),
                         manual_dir=manual)
    trainval = {ex["image_id"].decode(): ex for ex in read_split(source, "trainval")}
    assert sorted(trainval) == sorted(VOC_SPLITS["trainval"] + VOC12_SPLITS["trainval"])
    assert [ex["image_id"].decode() for ex in read_split(source, "test")] == ["000001"]
    cat = trainval["2008_000002"]["objects"]
    np.testing.assert_allclose(cat["bbox"], [[1 / 14, 1 / 22, 12 / 14, 20 / 22]], rtol=1e-6)
    assert [VOC_CLASSES[i] for i in cat["label"]] == ["cat"]
    assert source.builder.__class__.SPLITS == tuple(sorted(source.info.splits, reverse=True))
    # Without the 2012 folder, the error names what to extract.
    write_voc(str(tmp_path / "only07"))
    with pytest.raises(InputPipelineError, match="(?s)VOC2012.*VOCtrainval_11-May-2012.tar"):
        open_source("voc0712_detection", data_dir=str(tmp_path / "tfds2"),
                    manual_dir=str(tmp_path / "only07"))


def test_a_changed_source_folder_is_not_reused_silently(tmp_path, monkeypatch, capsys):
    """Through the prepare command: an image added to the extracted folder makes
    the prepared copy stale: refused with what changed, then --reprepare writes
    the new count, --accept_source keeps a copy; an empty --manual_dir is named."""
    from input_pipeline import prepare

    manual, tfds_dir = tmp_path / "manual", tmp_path / "tfds"
    jsons = write_coco(str(manual))

    def run(*extra, folder=manual):
        monkeypatch.setattr("sys.argv", ["prepare", "--dataset", "coco_detection",
                                         "--data_dir", str(tfds_dir), "--manual_dir",
                                         str(folder), "--sample", "0", *extra])
        prepare.main()
        return capsys.readouterr().out

    assert "split val: 2 examples" in run()
    # A third validation image, with its record in the instances file.
    Image.new("RGB", (10, 8)).save(manual / "val2017" / "000000000999.jpg")
    data = jsons["val2017"]
    data["images"].append({"id": 999, "file_name": "000000000999.jpg", "height": 8,
                           "width": 10})
    (manual / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    with pytest.raises(SystemExit, match=r"error: dataset 'coco_detection' in .* was "
                                         r"prepared from .*manual, which has changed "
                                         r"since: annotations: 2 files, \d+ -> \d+ bytes; "
                                         r"val2017: 2 -> 3 files.*--reprepare.*"
                                         r"--accept_source"):
        run()
    # A training run opening it (no --manual_dir: the recorded folder) refuses too.
    with pytest.raises(InputPipelineError, match="which has changed since"):
        open_source("coco_detection", data_dir=str(tfds_dir))
    assert "split val: 3 examples" in run("--reprepare")
    assert open_source("coco_detection", data_dir=str(tfds_dir)).num_examples("val") == 3

    os.remove(manual / "val2017" / "000000000999.jpg")
    with pytest.raises(SystemExit, match="val2017: 3 -> 2 files"):
        run()
    assert "split val: 3 examples" in run("--accept_source")  # kept as it was
    assert open_source("coco_detection", data_dir=str(tfds_dir)).num_examples("val") == 3

    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"--manual_dir .*empty is empty or missing"):
        run(folder=tmp_path / "empty")
