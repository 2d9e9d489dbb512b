"""voc2012_segmentation and coco_keypoints read the real datasets' layouts.

Fixtures are tiny copies of the official layouts written here (JPEGs, VOC
palette PNGs, ImageSets lists, a COCO person_keypoints json); what the
builders store is compared with what was written, the coordinate
conversions with a float64 NumPy version of COCO's definitions.
"""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from input_pipeline.errors import InputPipelineError
from input_pipeline.sources.registry import open_source

VOC_IDS = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033"]}
AUG_ONLY = "2008_000002"  # in train_aug but not in VOC's train list
SIZES = {"2007_000032": (20, 24), "2007_000039": (18, 16), "2007_000033": (16, 20),
         AUG_ONLY: (12, 14)}


def voc_palette() -> list[int]:
    """VOC's colour map (devkit's labelcolormap): bits of the index spread over RGB."""
    out = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


def class_map(image_id: str) -> np.ndarray:
    """A mask with background, two classes and a 255 boundary, different per id."""
    h, w = SIZES[image_id]
    seed = int(image_id.replace("_", ""))
    mask = np.random.default_rng(seed).integers(0, 21, (h, w)).astype(np.uint8)
    mask[0, :] = 255
    mask[:, 0] = 0
    return mask


def write_voc(manual: str, aug: bool = False) -> str:
    root = os.path.join(manual, "VOCdevkit", "VOC2012")
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation",
              "SegmentationClassAug"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    rng = np.random.default_rng(0)
    for image_id, (h, w) in SIZES.items():
        # 4:4:4 chroma, so TF's and PIL's decoders differ only by IDCT rounding.
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            os.path.join(root, "JPEGImages", f"{image_id}.jpg"), subsampling=0)
        mask = Image.fromarray(class_map(image_id), mode="P")
        mask.putpalette(voc_palette())
        if image_id != AUG_ONLY:
            mask.save(os.path.join(root, "SegmentationClass", f"{image_id}.png"))
        # The common SegmentationClassAug release: greyscale PNGs of class ids.
        Image.fromarray(class_map(image_id), mode="L").save(
            os.path.join(root, "SegmentationClassAug", f"{image_id}.png"))
    lists = os.path.join(root, "ImageSets", "Segmentation")
    for split, ids in VOC_IDS.items():
        with open(os.path.join(lists, f"{split}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    if aug:  # DeepLab's list format: image and mask paths
        with open(os.path.join(lists, "train_aug.txt"), "w") as f:
            for i in [*VOC_IDS["train"], AUG_ONLY]:
                f.write(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n")
    return root


def read_split(source, split: str) -> list[dict]:
    decoders = {"image": tfds.decode.SkipDecoding()}
    return list(tfds.as_numpy(source.builder.as_dataset(split, decoders=decoders)))


@pytest.mark.parametrize("aug", [False, True])
def test_voc_masks_images_and_splits(tmp_path, aug):
    root = write_voc(str(tmp_path / "manual"), aug=aug)
    source = open_source("voc2012_segmentation", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(tmp_path / "manual"))
    want = {"train": 2, "val": 1, **({"train_aug": 3} if aug else {})}
    assert {s: v.num_examples for s, v in source.info.splits.items()} == want
    assert source.info.metadata["class_names"][15] == "person"
    assert source.num_classes() == 21
    for split in want:
        examples = read_split(source, split)
        assert len(examples) == want[split]
        for ex in examples:
            image_id = ex["image_id"].decode()
            if split != "train_aug":
                assert image_id in VOC_IDS[split]
            # Palette indices (class ids), not colours; 255 survives.
            mask = ex["segmentation"]
            assert mask.shape == (*SIZES[image_id], 1) and mask.dtype == np.uint8
            np.testing.assert_array_equal(mask[:, :, 0], class_map(image_id))
            assert 255 in mask
            with open(os.path.join(root, "JPEGImages", f"{image_id}.jpg"), "rb") as f:
                assert ex["image"] == f.read()  # the JPEG, not re-encoded


def test_voc_decoded_image_matches_the_jpeg(tmp_path):
    root = write_voc(str(tmp_path / "manual"))
    source = open_source("voc2012_segmentation", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(tmp_path / "manual"))
    ex = next(iter(tfds.as_numpy(source.builder.as_dataset("val"))))
    with Image.open(os.path.join(root, "JPEGImages", "2007_000033.jpg")) as im:
        reference = np.asarray(im.convert("RGB"), np.int16)
    assert ex["image"].shape == reference.shape
    # TF decodes with a fast integer IDCT, PIL with the exact one: a few levels
    # apart on noise; a wrong image or channel order is ~80 apart on average.
    diff = np.abs(ex["image"].astype(np.int16) - reference)
    assert diff.max() <= 8 and diff.mean() < 1.5


def test_voc_train_aug_from_sbd_mat_files(tmp_path):
    """SBD's own layout: train_aug = VOC train + SBD train/val - VOC val, VOC's
    masks (with 255) where it has them, SBD's .mat masks elsewhere."""
    io = pytest.importorskip("scipy.io")
    manual = tmp_path / "manual"
    root = write_voc(str(manual))
    sbd = manual / "benchmark_RELEASE" / "dataset"
    os.makedirs(sbd / "cls")
    sbd_masks = {}
    for i in (AUG_ONLY, "2007_000033", "2007_000032"):
        sbd_masks[i] = np.minimum(class_map(i), 20)  # SBD has no ignore label
        io.savemat(str(sbd / "cls" / f"{i}.mat"), {"GTcls": {
            "Segmentation": sbd_masks[i], "CategoriesPresent": np.unique(sbd_masks[i])}})
    (sbd / "train.txt").write_text(f"{AUG_ONLY}\n2007_000033\n")  # 33 is VOC val
    (sbd / "val.txt").write_text("2007_000032\n")
    assert os.path.isdir(root)
    source = open_source("voc2012_segmentation", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(manual))
    aug = {ex["image_id"].decode(): ex["segmentation"][:, :, 0]
           for ex in read_split(source, "train_aug")}
    assert sorted(aug) == sorted([*VOC_IDS["train"], AUG_ONLY])
    np.testing.assert_array_equal(aug[AUG_ONLY], sbd_masks[AUG_ONLY])
    np.testing.assert_array_equal(aug["2007_000032"], class_map("2007_000032"))


def voc_prepare_error(tmp_path) -> str:
    """The message of the error preparing VOC from tmp_path/manual must raise."""
    with pytest.raises(InputPipelineError) as e:
        open_source("voc2012_segmentation", data_dir=str(tmp_path / "tfds"),
                    manual_dir=str(tmp_path / "manual"))
    return str(e.value)


def test_voc_missing_jpeg_is_named(tmp_path):
    root = write_voc(str(tmp_path / "manual"))
    os.remove(os.path.join(root, "JPEGImages", "2007_000039.jpg"))
    message = voc_prepare_error(tmp_path)
    assert "2007_000039.jpg" in message and "missing" in message and "train.txt" in message


def test_voc_rgb_mask_is_refused(tmp_path):
    root = write_voc(str(tmp_path / "manual"))
    path = os.path.join(root, "SegmentationClass", "2007_000033.png")
    with Image.open(path) as im:
        im.convert("RGB").save(path)
    message = voc_prepare_error(tmp_path)
    assert "2007_000033.png" in message and "'RGB'" in message and "palette" in message


def test_voc_size_mismatch_and_val_in_train_aug(tmp_path):
    root = write_voc(str(tmp_path / "manual"))
    mask = Image.fromarray(np.zeros((5, 5), np.uint8), mode="P")
    mask.save(os.path.join(root, "SegmentationClass", "2007_000032.png"))
    message = voc_prepare_error(tmp_path)
    assert "2007_000032.png" in message and "5x5" in message and "20x24" in message

    root = write_voc(str(tmp_path / "manual"), aug=True)
    with open(os.path.join(root, "ImageSets/Segmentation/train_aug.txt"), "a") as f:
        f.write("2007_000033\n")
    message = voc_prepare_error(tmp_path)
    assert "train_aug.txt" in message and "val images" in message
    assert "2007_000033" in message


def test_voc_without_files_says_how(tmp_path):
    with pytest.raises(InputPipelineError, match="never downloaded.*--manual_dir"):
        open_source("voc2012_segmentation", data_dir=str(tmp_path / "tfds"))
    message = voc_prepare_error(tmp_path)
    assert "does not exist" in message and "VOCdevkit/VOC2012" in message
    os.makedirs(tmp_path / "manual" / "VOC2012")  # extracted elsewhere
    message = voc_prepare_error(tmp_path)
    assert "found no JPEGImages" in message and "VOCdevkit/VOC2012" in message


# COCO: keypoints are x, y, v triples in pixels; v=0 (unlabelled) has x=y=0.
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13],
                 [6, 7], [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3],
                 [2, 4], [3, 5], [4, 6], [5, 7]]
COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear",
              "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
              "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle"]


def person(ann_id, image_id, bbox, rng, crowd=False):
    if crowd:
        kp = [0] * 51
    else:
        v = rng.integers(0, 3, 17)
        v[:3] = [0, 1, 2]
        xy = rng.uniform(1, 10, (17, 2)).round(2) * (v[:, None] > 0)
        kp = np.concatenate([xy, v[:, None]], 1).ravel().tolist()
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox,
            "keypoints": kp, "num_keypoints": int(np.sum(np.array(kp[2::3]) > 0)),
            "area": float(bbox[2] * bbox[3] * 0.7), "iscrowd": int(crowd),
            "segmentation": [[0, 0, 1, 1, 1, 0]]}


def write_coco(manual: str) -> dict:
    rng = np.random.default_rng(0)
    jsons = {}
    images = {"train2017": {7: (20, 30), 8: (16, 12)},
              "val2017": {101: (24, 24), 102: (16, 20), 103: (10, 10)}}
    anns = {"train2017": [person(1, 7, [2.5, 3.0, 10.0, 12.0], rng),
                          person(2, 7, [0.0, 0.0, 30.0, 20.0], rng, crowd=True)],
            # 102 has nobody; 101's second box pokes past the right border.
            "val2017": [person(3, 101, [1.0, 2.0, 5.0, 6.0], rng),
                        person(4, 101, [20.0, 4.0, 4.5, 8.0], rng),
                        person(5, 103, [1.0, 1.0, 2.0, 2.0], rng)]}
    os.makedirs(os.path.join(manual, "annotations"), exist_ok=True)
    for folder, sizes in images.items():
        os.makedirs(os.path.join(manual, folder))
        records = []
        for image_id, (h, w) in sizes.items():
            name = f"{image_id:012d}.jpg"
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
                os.path.join(manual, folder, name))
            records.append({"id": image_id, "file_name": name, "height": h, "width": w})
        data = {"images": records, "annotations": anns[folder],
                "categories": [{"id": 1, "name": "person", "supercategory": "person",
                                "keypoints": COCO_NAMES, "skeleton": COCO_SKELETON}]}
        with open(os.path.join(manual, "annotations",
                               f"person_keypoints_{folder}.json"), "w") as f:
            json.dump(data, f)
        jsons[folder] = data
    return jsons


def test_coco_boxes_keypoints_and_metadata(tmp_path):
    jsons = write_coco(str(tmp_path / "manual"))
    source = open_source("coco_keypoints", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(tmp_path / "manual"))
    meta = source.info.metadata
    assert meta["keypoint_names"] == COCO_NAMES
    assert meta["flip_pairs"] == [[i, i + 1] for i in range(1, 17, 2)]
    assert meta["skeleton"] == [[a - 1, b - 1] for a, b in COCO_SKELETON]
    for split, folder in (("train", "train2017"), ("val", "val2017")):
        data = jsons[folder]
        sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
        with_people = sorted({a["image_id"] for a in data["annotations"]})
        examples = {int(ex["image_id"]): ex for ex in read_split(source, split)}
        assert sorted(examples) == with_people
        for image_id, ex in examples.items():
            h, w = sizes[image_id]
            assert (ex["height"], ex["width"]) == (h, w)
            anns = [a for a in data["annotations"] if a["image_id"] == image_id]
            obj = ex["objects"]
            np.testing.assert_array_equal(obj["id"], [a["id"] for a in anns])
            x, y, bw, bh = np.array([a["bbox"] for a in anns], np.float64).T
            box = np.clip(np.stack([y / h, x / w, (y + bh) / h, (x + bw) / w], 1), 0, 1)
            np.testing.assert_allclose(obj["bbox"], box, rtol=1e-6)
            kp = np.array([a["keypoints"] for a in anns], np.float64).reshape(-1, 17, 3)
            np.testing.assert_allclose(obj["keypoints"][..., 0], kp[..., 1] / h, rtol=1e-6)
            np.testing.assert_allclose(obj["keypoints"][..., 1], kp[..., 0] / w, rtol=1e-6)
            np.testing.assert_array_equal(obj["keypoints"][..., 2], kp[..., 2])
            np.testing.assert_array_equal(obj["num_keypoints"],
                                          [a["num_keypoints"] for a in anns])
            np.testing.assert_allclose(obj["area"], [a["area"] for a in anns], rtol=1e-6)
            np.testing.assert_array_equal(obj["iscrowd"], [a["iscrowd"] for a in anns])
            # Back in original pixels (what keypoint AP needs): COCO's x, y.
            labelled = kp[..., 2] > 0
            np.testing.assert_allclose(obj["keypoints"][..., 1][labelled] * w,
                                       kp[..., 0][labelled], atol=1e-4)
    val = {int(ex["image_id"]): ex for ex in read_split(source, "val")}
    assert val[101]["objects"]["bbox"][1, 3] == 1.0  # clipped at the border
    train = {int(ex["image_id"]): ex for ex in read_split(source, "train")}
    assert train[7]["objects"]["iscrowd"].tolist() == [False, True]
    assert set(train[7]["objects"]["keypoints"][0, :3, 2]) == {0, 1, 2}


def test_coco_all_images_keeps_images_without_people(tmp_path):
    # In TFDS's default manual folder, found without being named (as the trainer does).
    write_coco(str(tmp_path / "tfds" / "downloads" / "manual" / "coco"))
    source = open_source("coco_keypoints/all_images",
                         data_dir=str(tmp_path / "tfds"))
    assert source.info.splits["train"].num_examples == 2
    val = {int(ex["image_id"]): ex for ex in read_split(source, "val")}
    assert sorted(val) == [101, 102, 103]
    assert val[102]["objects"]["bbox"].shape == (0, 4)
    assert val[102]["objects"]["keypoints"].shape == (0, 17, 3)


def test_coco_missing_json_or_image_is_named(tmp_path):
    manual = str(tmp_path / "manual")
    write_coco(manual)
    os.remove(os.path.join(manual, "val2017", "000000000103.jpg"))
    with pytest.raises(InputPipelineError, match=r"val2017/000000000103\.jpg"):
        open_source("coco_keypoints", data_dir=str(tmp_path / "tfds"),
                    manual_dir=manual)
    os.remove(os.path.join(manual, "annotations", "person_keypoints_train2017.json"))
    with pytest.raises(InputPipelineError, match="person_keypoints_train2017.json"):
        open_source("coco_keypoints", data_dir=str(tmp_path / "tfds"),
                    manual_dir=manual)


def test_prepare_tool_writes_both_from_manual_dirs(tmp_path, monkeypatch, capsys):
    from input_pipeline import prepare

    write_voc(str(tmp_path / "voc"), aug=True)
    write_coco(str(tmp_path / "coco"))
    for name, manual in (("voc2012_segmentation", "voc"), ("coco_keypoints", "coco")):
        monkeypatch.setattr("sys.argv", ["prepare", "--dataset", name, "--data_dir",
                                         str(tmp_path / "tfds"), "--manual_dir",
                                         str(tmp_path / manual)])
        prepare.main()
    out = capsys.readouterr().out
    assert "split train_aug: 3 examples" in out and "classes: 21" in out
    assert "split val: 2 examples" in out and "keypoints: 17" in out


def test_coco_grey_jpeg_decodes_to_rgb_and_bad_files_are_named(tmp_path):
    manual = tmp_path / "manual"
    write_coco(str(manual))
    # COCO has greyscale JPEGs; they must decode with 3 channels like the rest.
    grey = np.random.default_rng(1).integers(0, 255, (24, 24), dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(manual / "val2017" / "000000000101.jpg")
    source = open_source("coco_keypoints", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(manual))
    ex = {int(e["image_id"]): e for e in tfds.as_numpy(source.builder.as_dataset("val"))}[101]
    assert ex["image"].shape == (24, 24, 3)
    with Image.open(manual / "val2017" / "000000000101.jpg") as im:
        assert im.mode == "L"
        reference = np.asarray(im, np.int16)
    assert np.abs(ex["image"][..., 0].astype(np.int16) - reference).mean() < 1.5
    assert (ex["image"][..., 0] == ex["image"][..., 2]).all()

    Image.fromarray(grey[:20]).save(manual / "val2017" / "000000000101.jpg")
    with pytest.raises(InputPipelineError, match=r"000000000101\.jpg is 20x24.*24x24"):
        open_source("coco_keypoints", data_dir=str(tmp_path / "tfds2"),
                    manual_dir=str(manual))
    path = manual / "annotations" / "person_keypoints_val2017.json"
    data = json.loads(path.read_text())
    del data["categories"][0]["keypoints"]  # e.g. instances_val2017.json
    path.write_text(json.dumps(data))
    with pytest.raises(InputPipelineError,
                       match=r"person_keypoints_val2017\.json is not a COCO person_keypoints"):
        open_source("coco_keypoints", data_dir=str(tmp_path / "tfds3"),
                    manual_dir=str(manual))


def test_coco_examples_feed_the_pose_configs_pp(tmp_path):
    """The reader and the pose task meet here: the COCO config's own pp strings
    crop the non-crowd persons, flag the crowd one, and keep keypoints in
    original pixels for keypoint AP."""
    import tensorflow as tf

    from configs.transfer import pose_coco_resnet101
    from input_pipeline.keys import SEED_KEY
    from input_pipeline.pp.base import PPContext
    from input_pipeline.pp.builder import build_preprocess
    from input_pipeline.pp.registry import default_registry

    jsons = write_coco(str(tmp_path / "manual"))
    source = open_source("coco_keypoints", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(tmp_path / "manual"))
    assert source.num_classes() == 1  # person
    config = pose_coco_resnet101.get_config()
    ctx = PPContext(num_classes=1)
    train_pp = build_preprocess(config.input.pp, default_registry(), ctx)
    eval_pp = build_preprocess(config.evals.test.pp, default_registry(), ctx)
    ds = source.read("train")
    (ex,) = [e for e in ds if int(e["image_id"]) == 7]
    ex = dict(ex, **{SEED_KEY: tf.constant([0, 3], tf.int64)})
    out = eval_pp.rest(eval_pp.decode_stage(dict(ex)))
    assert out["pose_valid"].numpy().sum() == 1  # the crowd region is not a person
    assert out["gt_iscrowd"].numpy()[:2].tolist() == [False, True]
    ann = jsons["train2017"]["annotations"][0]
    kp = np.array(ann["keypoints"], np.float64).reshape(17, 3)
    labelled = kp[:, 2] > 0
    got = out["gt_keypoints"].numpy()[0]
    np.testing.assert_allclose(got[labelled][:, [1, 0]], kp[labelled, :2], atol=1e-3)
    train = train_pp.rest(train_pp.decode_stage(dict(ex)))
    assert tuple(train["image"].shape) == tuple(config.input.image_shape)
    assert train["keypoints"].shape == (17, 3)
    # Only the non-crowd person can be picked (the crowd has no keypoints); those
    # of its keypoints that the crop cuts off lose their label.
    assert 0 < (train["keypoints"].numpy()[:, 2] > 0).sum() <= labelled.sum()


def test_voc_examples_feed_the_deeplab_configs_pp(tmp_path):
    """The reader and the segmentation task meet here: the VOC config's splits
    exist and its pp string pads image and class map to 513 px, the map with 255."""
    import tensorflow as tf

    from configs.transfer import deeplab_voc12_resnet101
    from input_pipeline.pp.base import PPContext
    from input_pipeline.pp.builder import build_preprocess
    from input_pipeline.pp.registry import default_registry

    write_voc(str(tmp_path / "manual"))
    source = open_source("voc2012_segmentation", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(tmp_path / "manual"))
    config = deeplab_voc12_resnet101.get_config()
    # The paper's SBD-augmented set by default; without it, the message says both ways on.
    assert config.input.data.split == "train_aug" and "train_aug" not in source.info.splits
    with pytest.raises(ValueError, match=r"(?s)benchmark\.tgz.*--config\.input\.data\.split=train"):
        source.check_split(config.input.data.split)
    assert config.evals.test.data.split in source.info.splits
    assert config.model.num_classes == source.num_classes()
    pp = build_preprocess(config.evals.test.pp, default_registry(),
                          PPContext(num_classes=21))
    ds = source.read("train")
    for ex in ds:
        out = pp.rest(pp.decode_stage(dict(ex)))
        image_id = ex["image_id"].numpy().decode()
        h, w = SIZES[image_id]
        seg = out["segmentation"].numpy()[..., 0]
        assert out["image"].shape == (513, 513, 3) and seg.shape == (513, 513)
        np.testing.assert_array_equal(seg[:h, :w], class_map(image_id))
        assert (seg[h:] == 255).all() and (seg[:, w:] == 255).all()
        assert tf.reduce_all(out["image"][h:] == out["image"][-1, -1]).numpy()
