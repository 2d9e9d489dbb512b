"""Faults that used to hang a run, report stale results or lose work.

Whatever might hang runs in a subprocess with a timeout, so a regression
fails instead of stalling the suite. Checkpoint and workdir faults that need
a training run are in test_faults_training.py.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import jax.numpy as jnp
import pytest
import tensorflow as tf

from big_vision_like import checkpointing, metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, *args: str, timeout: float, stdin: str | None = None,
               script: str | None = None, cwd: str = REPO
               ) -> tuple[subprocess.CompletedProcess, float]:
    """Runs `code` (or `stdin` as `python -`, or the file `script`); the
    timeout turns a hang into a failure."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = ([sys.executable, "-"] if stdin is not None else
               [sys.executable, script] if script else [sys.executable, "-c", code])
    out = subprocess.run([*command, *args], input=stdin, capture_output=True, text=True,
                         timeout=timeout, cwd=cwd, env=env)
    return out, time.perf_counter() - start


# --- 1. Damaged TFRecord files ------------------------------------------------

def _damaged_copy(tiny_source, root, splits: tuple[str, ...], damage: str) -> str:
    """A copy of the tiny dataset whose `splits`' files are damaged; its data_dir."""
    src = tiny_source.builder.data_path
    dst = root / "synthetic_jft" / "tiny" / src.name
    shutil.copytree(src, dst)
    for split in splits:
        (path,) = dst.glob(f"synthetic_jft-{split}.tfrecord*")
        _damage(path, damage)
    return str(root)


def _damage(path, damage: str) -> None:
    data = bytearray(path.read_bytes())
    if damage == "truncated":  # a copy or download cut short, mid-record
        data = data[:len(data) // 2]
    elif damage == "bit_flip":  # one bit inside a record's data: its CRC fails
        data[len(data) // 2] ^= 0x10
    elif damage == "not_tfrecord":  # every byte wrong: nothing can be read
        data = bytearray(b"this is not a TFRecord file\n" * 1000)
    elif damage == "no_image_decodes":  # well-formed records, undecodable images
        records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
        with tf.io.TFRecordWriter(str(path)) as w:
            for rec in records:
                ex = tf.train.Example.FromString(rec)
                ex.features.feature["image"].bytes_list.value[0] = b"not an image"
                w.write(ex.SerializeToString())
        return
    path.write_bytes(bytes(data))


_READ = """
import json, os, sys, time
from input_pipeline.sources.registry import open_source
from input_pipeline.stream import batches
from tests.test_dataset import make_pp

shard = batches.HostShard(0, 1)
for data_dir in sys.argv[1].split(os.pathsep):
    source = open_source("synthetic_jft/tiny", data_dir, prepare=False)
    for split in sys.argv[2].split(","):
        for skip in (True, False):
            start = time.perf_counter()
            if split == "train":
                ds = batches.train_dataset(source, "train", make_pp(source), 16, seed=0,
                                           shard=shard, shuffle_buffer=100,
                                           skip_corrupt=skip)
            else:
                ds, _ = batches.eval_dataset(source, split, make_pp(source), 16, shard=shard,
                                             skip_corrupt=skip)
            try:
                for _, batch in zip(range(400), batches.HostIterator(ds)):  # 3 epochs
                    pass
                result = {"error": None}
            except batches.InputPipelineError as e:
                result = {"error": str(e)}
            result.update(data_dir=data_dir, split=split, skip=skip,
                          seconds=time.perf_counter() - start)
            print(json.dumps(result), flush=True)
"""


def _results(out: subprocess.CompletedProcess) -> list[dict]:
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("damage", ["truncated", "bit_flip"])
def test_find_damaged_names_the_file_behind_a_read_error(tmp_path, damage):
    """The contract the whole-run tests below rely on, in process: of a split's
    files, the one TensorFlow's offset-only read error comes from."""
    from input_pipeline.stream import record_files

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"part-{i}.tfrecord")
        with tf.io.TFRecordWriter(str(paths[-1])) as w:
            for r in range(20):
                w.write(bytes([i, r]) * (50 + r))
    _damage(paths[1], damage)
    with pytest.raises(tf.errors.DataLossError) as e:
        for _ in tf.data.TFRecordDataset([str(p) for p in paths]):
            pass
    found = record_files.find_damaged([str(p) for p in paths], e.value.message)
    kind = "truncated" if damage == "truncated" else "corrupted"
    assert [p for p, _ in found] == [str(paths[1])]
    assert found[0][1].startswith(f"{kind} record at ")
    assert record_files.find_damaged([str(paths[0]), str(paths[2])], e.value.message) == []


DAMAGES = ("truncated", "bit_flip", "not_tfrecord")


@pytest.mark.slow  # a reading subprocess; find_damaged's contract is above
def test_damaged_tfrecord_file_stops_with_its_name(tiny_source, tmp_path):
    """Formerly: with skip_corrupt=True the reader retried the broken record
    forever at full CPU; with False the message advised skip_corrupt=True.
    Training and evaluation, skipping corrupt images or not, for each damage
    (one subprocess reads the three damaged copies)."""
    splits = ("train", "fasteval")
    data_dirs = {_damaged_copy(tiny_source, tmp_path / damage, splits, damage): damage
                 for damage in DAMAGES}
    out, _ = run_python(_READ, os.pathsep.join(data_dirs), ",".join(splits), timeout=400)
    results = _results(out)
    assert sorted(data_dirs[r["data_dir"]] for r in results) == sorted(DAMAGES * 4)
    for result in results:
        error = result["error"]
        assert error is not None, f"{result}: a damaged file was read as if whole"
        assert f"synthetic_jft-{result['split']}.tfrecord-00000-of-00001 (" in error
        assert "damaged" in error and "record at" in error
        assert "set skip_corrupt=True" not in error  # skipping cannot help here
        assert result["seconds"] < 60


@pytest.mark.slow  # over a thousand records in a subprocess
def test_stream_of_undecodable_images_stops_instead_of_skipping_forever(tiny_source,
                                                                        tmp_path):
    data_dir = _damaged_copy(tiny_source, tmp_path, ("train",), "no_image_decodes")
    out, _ = run_python(_READ, data_dir, "train", timeout=240)
    skipping, fatal = _results(out)
    assert "records in a row could not be decoded" in skipping["error"]
    # Not skipping, the first one stops the run, and skipping is the advice.
    assert "skip_corrupt=True" in fatal["error"]


def test_occasional_undecodable_images_are_still_skipped_and_resume_exactly(tiny_source):
    """Decoding record by record keeps the stream a pure function of the seed."""
    from input_pipeline.stream import batches
    from tests.test_dataset import make_pp

    def ids(start, n):
        ds = batches.train_dataset(tiny_source, "train", make_pp(tiny_source), 16, seed=3,
                                   shard=batches.HostShard(0, 1), shuffle_buffer=100,
                                   start_index=start)
        it = batches.HostIterator(ds)
        return [b["image_id"].tolist() for _, b in zip(range(n), it)], it.state()

    first, state = ids(0, 4)
    more, _ = ids(0, 6)
    resumed, _ = ids(state["next_index"], 2)
    assert more[:4] == first and more[4:] == resumed


# --- 3. Generating a dataset from a script, stdin --------------------------------

_GENERATE = """
import sys
from input_pipeline.sources.registry import open_source
source = open_source("synthetic_jft/tiny", data_dir=sys.argv[1])
print("train examples:", source.num_examples("train"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["script", "stdin"])
def test_dataset_generates_from_a_script_without_main_guard(tmp_path, how):
    """Formerly: spawned workers re-ran the script (no __main__ guard) and
    restarted forever; from stdin they failed to open '<stdin>' forever."""
    data_dir = str(tmp_path / "tfds")
    if how == "script":
        script = tmp_path / "make_data.py"
        script.write_text(_GENERATE)
        out, _ = run_python("", data_dir, timeout=300, script=str(script), cwd=str(tmp_path))
    else:
        out, _ = run_python("", data_dir, timeout=300, stdin=_GENERATE, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "train examples: 2000" in out.stdout
    assert "Traceback" not in out.stderr


# --- 5. Replayed steps in metrics.jsonl -------------------------------------------

def test_metrics_have_one_row_per_step_after_a_resume(tmp_path):
    """A run checkpointed at 4 and killed after 6 replays 5 and 6 on resume."""
    from big_vision_like import trainer

    first = metrics.MetricWriter(str(tmp_path))
    for step in range(1, 7):
        first.write(step, {"train/loss": 10.0 - step})
    first.write(4, {"eval/map": 0.1})
    second = metrics.MetricWriter(str(tmp_path))  # the resumed run
    for step in range(5, 9):
        second.write(step, {"train/loss": 20.0 - step})
    second.write(8, {"eval/map": 0.3})
    rows = metrics.read_metrics(str(tmp_path))
    assert [r["step"] for r in rows] == list(range(1, 9))
    by_step = {r["step"]: r for r in rows}
    assert by_step[4] == {"step": 4, "train/loss": 6.0, "eval/map": 0.1}  # merged
    assert by_step[6]["train/loss"] == 14.0  # the replay wins
    assert trainer.summary(str(tmp_path)) == {"step": 8, "train/loss": 12.0,
                                              "eval/map": 0.3}


def test_a_row_cut_short_by_a_kill_costs_only_itself(tmp_path):
    writer = metrics.MetricWriter(str(tmp_path))
    writer.write(1, {"train/loss": 1.0})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "train/lo')  # SIGKILL mid-write
    metrics.MetricWriter(str(tmp_path)).write(2, {"train/loss": 0.5})
    assert metrics.read_metrics(str(tmp_path)) == [{"step": 1, "train/loss": 1.0},
                                                   {"step": 2, "train/loss": 0.5}]


# --- 6. keep_ckpts=0 ----------------------------------------------------------------

@pytest.mark.parametrize("keep", [0, -1])
def test_keeping_no_checkpoint_is_a_config_error(tmp_path, keep):
    """Formerly keep_ckpts=0 deleted every checkpoint: a rerun began at step 1."""
    with pytest.raises(ValueError, match="keep_ckpts"):
        checkpointing.Checkpointer(str(tmp_path), keep=keep, asynchronous=False)
    with pytest.raises(ValueError, match="keep_ckpt_every_steps"):
        checkpointing.Checkpointer(str(tmp_path), keep=2, keep_every=0)


@pytest.mark.parametrize("keep,kept", [(1, [3]), (None, [1, 2, 3])])
def test_the_latest_checkpoint_is_always_kept(tmp_path, keep, kept):
    ckpt = checkpointing.Checkpointer(str(tmp_path), keep=keep, asynchronous=False)
    for step in (1, 2, 3):
        ckpt.save(step, {"w": jnp.full(2, float(step))})
    ckpt.wait()
    assert ckpt.all_steps() == kept and ckpt.latest_step() == 3
    ckpt.close()
