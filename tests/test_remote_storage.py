"""Workdirs and data on a non-local filesystem: TensorFlow's in-memory ram://,
which goes through the same file system layer as gs:// and runs offline."""

import json
import os
import subprocess
import sys
import uuid

import jax
import numpy as np
import pytest

from big_vision_like import checkpoint_mirror, checkpoint_reading, checkpointing, trainer
from big_vision_like import filesystem as fs
from big_vision_like.metrics import MetricWriter, read_metrics
from tests.helpers import data_dir_of, tiny_config, xla_flags


@pytest.fixture
def ram():
    """A fresh ram:// root, emptied afterwards (it lives as long as the process)."""
    root = f"ram://{uuid.uuid4().hex[:8]}"
    yield root
    if fs.exists(root):
        fs.rmtree(root)


@pytest.fixture
def ram_in_epath(monkeypatch):
    """TFDS opens paths with etils.epath, which knows gs:// but not ram://: teach it
    ram:// the way it handles gs:// (TensorFlow's file system layer)."""
    from etils.epath import backend, gpath, register

    monkeypatch.setattr(gpath, "_URI_PREFIXES", (*gpath._URI_PREFIXES, "ram://"))
    monkeypatch.setattr(gpath, "_URI_SCHEMES", gpath._URI_SCHEMES | {"ram"})
    monkeypatch.setitem(gpath._URI_MAP_ROOT, "ram://", "/ram/")
    monkeypatch.setitem(gpath._PREFIX_TO_BACKEND, "ram", backend.tf_backend)
    monkeypatch.setitem(register._URI_PREFIXES_TO_CLS, "ram://", gpath.PosixGPath)


class Preempted(Exception):
    pass


@pytest.mark.slow
def test_a_run_on_ram_with_its_data_there_is_killed_resumes_and_matches_a_local_run(
        tiny_source, pretrained_tiny, ram, ram_in_epath, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a URL taken for a local path would appear here
    data_dir, workdir = f"{ram}/data", f"{ram}/run"
    fs.copy_tree(os.path.join(data_dir_of(tiny_source), "synthetic_jft"),
                 f"{data_dir}/synthetic_jft")
    config = tiny_config(data_dir)
    config.profile = dict(start_step=6, num_steps=1)
    real_save = checkpointing.Checkpointer.save

    def save_then_die(self, step, state, data_state=None, **kwargs):
        real_save(self, step, state, data_state, **kwargs)
        if step == 4:
            raise Preempted

    monkeypatch.setattr(checkpointing.Checkpointer, "save", save_then_die)
    with pytest.raises(Preempted):
        trainer.train(config, workdir)
    assert fs.exists(f"{workdir}/checkpoints/4/{checkpoint_mirror.COMMITTED}")
    assert [r["step"] for r in read_metrics(workdir) if "train/loss" in r] == [1, 2, 3, 4]
    monkeypatch.setattr(checkpointing.Checkpointer, "save", real_save)
    real_restore = checkpointing.Checkpointer.restore_latest_intact
    restored_steps = []

    def spy(self, abstract_state):
        out = real_restore(self, abstract_state)
        restored_steps.append(None if out is None else out[0])
        return out

    monkeypatch.setattr(checkpointing.Checkpointer, "restore_latest_intact", spy)
    # The step's array files stay remote until its restore fetches them.
    monkeypatch.setattr(checkpoint_mirror, "DEFER_BYTES", 4096)
    real_fetch, fetched = checkpoint_mirror.Mirror.fetch, []

    def fetch_spy(self, name):
        fetched.append((name, len(self._deferred.get(name, []))))
        real_fetch(self, name)

    monkeypatch.setattr(checkpoint_mirror.Mirror, "fetch", fetch_spy)
    resumed = trainer.train(config, workdir)
    assert restored_steps == [4]  # read back from ram://, not trained again from 0
    assert fetched and fetched[0][0] == "4" and fetched[0][1] > 0, fetched

    local_dir, local_state = pretrained_tiny
    for x, y in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(local_state.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # Object stores cannot append: the file is rewritten, one row per step.
    lines = fs.read_text(f"{workdir}/metrics.jsonl").splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == sorted(set(steps)) and steps[:8] == list(range(1, 9))
    losses = {r["step"]: r["train/loss"] for r in read_metrics(workdir) if "train/loss" in r}
    assert losses == {r["step"]: r["train/loss"] for r in read_metrics(local_dir)
                      if "train/loss" in r}
    assert sorted(fs.listdir(f"{workdir}/checkpoints")) == ["4", "8"]
    saved = checkpoint_reading.load_state(f"{workdir}/checkpoints/8")["params"]
    for x, y in zip(jax.tree.leaves(saved), jax.tree.leaves(local_state.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert trainer.read_config(workdir).input.data.data_dir == data_dir
    assert fs.glob(f"{workdir}/tensorboard/events.out.tfevents.*")
    assert any(p.endswith(".xplane.pb") for p in fs.walk_files(f"{workdir}/profile"))
    assert json.loads(fs.read_text(f"{workdir}/final_evals.json"))["step"] == 8
    assert os.listdir(tmp_path) == []


def test_metrics_on_an_object_store_keep_one_row_per_step_across_resumes(ram):
    writer = MetricWriter(ram, upload_every_seconds=1e9)
    writer.write(1, {"train/loss": 3.0})
    writer.write(2, {"train/loss": 2.0})
    assert not fs.exists(f"{ram}/metrics.jsonl")  # not yet: uploads are batched
    writer.flush()
    writer.write(3, {"train/loss": 1.0})  # lost with the process: a resume replays it
    resumed = MetricWriter(ram, upload_every_seconds=0)  # uploads on every write
    resumed.write(2, {"train/loss": 2.0})
    resumed.write(2, {"eval/map": 0.5})
    resumed.write(3, {"train/loss": 1.5})
    rows = [json.loads(line) for line in fs.read_text(f"{ram}/metrics.jsonl").splitlines()]
    assert rows == [{"step": 1, "train/loss": 3.0},
                    {"step": 2, "train/loss": 2.0, "eval/map": 0.5},
                    {"step": 3, "train/loss": 1.5}]
    assert read_metrics(ram) == rows


def _fake_step(root: str, step: int, committed: bool = True) -> None:
    fs.write_atomic(f"{root}/{step}/state/array", b"x" * step)
    if committed:
        fs.write_atomic(f"{root}/{step}/{checkpoint_mirror.COMMITTED}", "ok")


def test_the_checkpoint_mirror_skips_a_cut_upload_and_follows_the_rotation(ram):
    remote = f"{ram}/checkpoints"
    _fake_step(remote, 4)
    _fake_step(remote, 8, committed=False)  # preempted mid-upload
    mirror = checkpoint_mirror.Mirror(remote)
    try:
        assert sorted(os.listdir(mirror.local)) == ["4"]
        _fake_step(mirror.local, 8)  # saved again, and a newer one; 4 rotated out
        _fake_step(mirror.local, 12)
        fs.rmtree(os.path.join(mirror.local, "4"))
        mirror.sync()
        assert sorted(fs.listdir(remote)) == ["12", "8"]
        assert _read_bytes(f"{remote}/12/state/array") == b"x" * 12
        assert fs.exists(f"{remote}/8/{checkpoint_mirror.COMMITTED}")
    finally:
        mirror.close()
    assert not os.path.exists(mirror.local)


def _remote_files(root: str) -> dict[str, bytes]:
    return {rel: _read_bytes(fs.join(root, rel)) for rel in fs.walk_files(root)}


# ram:// deletes and lists by name prefix ("4" takes "4.unreadable" along), so
# tests that rename steps use a file:// URL: TensorFlow's file system layer
# over the local disk, mirrored like any remote scheme.


def test_the_mirror_downloads_a_steps_arrays_only_when_it_is_restored(tmp_path, monkeypatch):
    """A resume reads one step; the others (keep_ckpt_every_steps may keep
    dozens) stay remote, metadata aside, and still move when renamed."""
    monkeypatch.setattr(checkpoint_mirror, "DEFER_BYTES", 1000)
    remote = f"file://{tmp_path}/checkpoints"
    for step in (4, 8):
        fs.write_atomic(f"{remote}/{step}/state/d/blob", bytes([step]) * 5000)
        fs.write_atomic(f"{remote}/{step}/state/_METADATA", f"meta {step}")
        fs.write_atomic(f"{remote}/{step}/data/input.json", "{}" + " " * 2000)  # not arrays
        fs.write_atomic(f"{remote}/{step}/{checkpoint_mirror.COMMITTED}", "ok")
    before = _remote_files(remote)
    mirror = checkpoint_mirror.Mirror(remote)
    try:
        assert sorted(fs.walk_files(mirror.local)) == sorted(
            rel for rel in before if not rel.endswith("blob"))
        mirror.fetch("8")
        assert _read_bytes(f"{mirror.local}/8/state/d/blob") == before["8/state/d/blob"]
        mirror.rename("4", "4.unreadable")  # moved aside without being downloaded
        mirror.rename("8", "8.after_2")
        mirror.sync()
        assert _remote_files(remote) == {
            rel.replace("4/", "4.unreadable/", 1).replace("8/", "8.after_2/", 1): data
            for rel, data in before.items()}
    finally:
        mirror.close()


def test_a_mirrored_checkpointer_restores_and_goes_back_with_arrays_left_remote(
        tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_mirror, "DEFER_BYTES", 1000)
    directory = f"file://{tmp_path}/checkpoints"
    ckpt = checkpointing.Checkpointer(directory, keep=None, asynchronous=False)
    for step in (1, 2, 3):
        ckpt.save(step, {"w": np.arange(4096, dtype=np.float32) * step})
    ckpt.close()
    saved = _remote_files(directory)
    resumed = checkpointing.Checkpointer(directory, keep=None, asynchronous=False)
    try:
        staged = sum(os.path.getsize(os.path.join(resumed._dir, rel))
                     for rel in fs.walk_files(resumed._dir))
        assert staged < sum(len(data) for data in saved.values()) / 3  # <1 step's arrays
        abstract = {"w": jax.ShapeDtypeStruct((4096,), np.float32)}
        state, _ = resumed.restore(3, abstract)
        np.testing.assert_array_equal(state["w"], np.arange(4096, dtype=np.float32) * 3)
        assert resumed.resume_from(1) == [2, 3]
    finally:
        resumed.close()
    assert _remote_files(directory) == {
        **{rel: d for rel, d in saved.items() if rel.startswith("1/")},
        **{rel.replace("2/", "2.after_1/", 1): d for rel, d in saved.items()
           if rel.startswith("2/")},
        **{rel.replace("3/", "3.after_1/", 1): d for rel, d in saved.items()
           if rel.startswith("3/")},
        "resume_steps.json": _read_bytes(f"{directory}/resume_steps.json")}


def test_a_multi_host_run_cannot_stage_checkpoints(ram, monkeypatch):
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(checkpointing.CheckpointError, match="gs:// or on a disk"):
        checkpointing.Checkpointer(f"{ram}/checkpoints")


def test_side_files_read_from_ram_as_from_a_local_disk(ram, tmp_path):
    from evaluators.map_at_k import load_class_weights
    from input_pipeline.hierarchy import LabelHierarchy
    from input_pipeline.image_ids import load_ids
    from input_pipeline.subsets import resolve_classes

    files = {"pairs.txt": "b a\nc a  # a comment\n", "ids.txt": "7\n3\n",
             "weights.txt": "0.5\n0.25\n0.25\n", "classes.txt": "b\n2\n"}
    for name, text in files.items():
        fs.write_atomic(f"{ram}/{name}", text)
        (tmp_path / name).write_text(text)
    np.save(tmp_path / "w.npy", np.array([0.2, 0.3, 0.5]))
    fs.copy_file(str(tmp_path / "w.npy"), f"{ram}/w.npy")
    names = ["a", "b", "c"]
    for root in (ram, str(tmp_path)):
        h = LabelHierarchy.from_pairs_file(f"{root}/pairs.txt", class_names=names)
        np.testing.assert_array_equal(h.fill_ancestors([2]), [1, 0, 1])
        np.testing.assert_array_equal(load_ids(f"{root}/ids.txt"), [7, 3])
        np.testing.assert_allclose(load_class_weights(f"{root}/weights.txt", 3),
                                   [0.5, 0.25, 0.25])
        np.testing.assert_allclose(load_class_weights(f"{root}/w.npy", 3), [0.2, 0.3, 0.5])
        assert resolve_classes(f"{root}/classes.txt", 3, names) == (1, 2)
    with pytest.raises(FileNotFoundError):
        fs.open(f"{ram}/missing.txt")


def test_paths_keep_their_scheme():
    assert fs.absolute("gs://b/w") == "gs://b/w"
    assert fs.join("gs://b/w", "checkpoints", "4") == "gs://b/w/checkpoints/4"
    assert fs.normpath("gs://b/w/x/../y/") == "gs://b/w/y"
    assert fs.parent("gs://b/w/checkpoints/4", 2) == "gs://b/w"
    assert fs.absolute("w") == os.path.join(os.getcwd(), "w")
    assert checkpoint_mirror.orbax_writes_directly("gs://b/w")
    assert not checkpoint_mirror.orbax_writes_directly("s3://b/w")


def test_params_saved_over_8_devices_load_in_a_process_with_one(pretrained_tiny):
    workdir, state = pretrained_tiny
    step_dir = os.path.join(workdir, "checkpoints", str(int(state.step)))
    code = ("import sys, jax, numpy as np; from big_vision_like import checkpoint_reading; "
            "p = checkpoint_reading.load_state(sys.argv[1])['params']; "
            "assert len(jax.devices()) == 1; "
            "np.save(sys.argv[2], np.asarray(p['head']['kernel']))")
    env = dict(os.environ, XLA_FLAGS=xla_flags(1))
    out = os.path.join(workdir, "head_kernel.npy")
    subprocess.run([sys.executable, "-c", code, step_dir, out], check=True, env=env,
                   timeout=300, capture_output=True)
    np.testing.assert_array_equal(np.load(out), np.asarray(state.params["head"]["kernel"]))


def _read_bytes(path: str) -> bytes:
    with fs.open(path, "rb") as f:
        return f.read()
