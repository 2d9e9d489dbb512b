"""Checkpoint checksums: every single-bit flip is caught, the sums do not depend
on the sharding, and a checkpoint whose array file lost a bit is moved aside,
named, and the run resumes from the one before; the verify command and the
one-device loader (init_from, the notebook) say the same."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from big_vision_like import checkpoint_reading, checkpointing, checksums
from big_vision_like import mesh as mesh_lib
from big_vision_like.checkpointing import CheckpointError
from big_vision_like.tools import verify_checkpoints
from tests.helpers import flip_a_bit_silently


def _reference_sums(x: np.ndarray) -> list[int]:
    """Python integers: the documented plain and weighted sums mod 2^32, the weight
    of element (r, k) (k its last index, r the row-major index of the others)
    a_r * c_k with c_k = (k * COLUMN_MULTIPLIER) | 1 and
    a_r = (r * ROW_MULTIPLIER + ROW_OFFSET) | 1, each mod 2^32."""
    x = np.asarray(x)
    bits = (x.astype(np.uint32) if x.dtype == bool else
            x.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[x.dtype.itemsize]))
    rows = bits.reshape(-1, bits.shape[-1] if bits.ndim else 1)
    m = 2 ** 32
    plain = weighted = 0
    for r, row in enumerate(rows):
        a = (r * checksums.ROW_MULTIPLIER + checksums.ROW_OFFSET) % m | 1
        for k, b in enumerate(row):
            c = k * checksums.COLUMN_MULTIPLIER % m | 1
            plain += int(b)
            weighted += int(b) * a * c
    return [plain % m, weighted % m]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int32", "uint8", "bool"])
def test_sums_match_the_reference_and_catch_every_single_bit_flip(dtype):
    rng = np.random.default_rng(0)
    x = np.asarray(jnp.asarray(rng.normal(0, 3, (3, 5, 7)) * 50).astype(dtype))
    sums = checksums.of_state({"x": jnp.asarray(x)})["x"]
    assert sums == _reference_sums(x)
    scalar, row = x[1, 2, 3], x[2, 1]
    assert checksums.of_state({"s": jnp.asarray(scalar)})["s"] == _reference_sums(scalar)
    assert checksums.of_state({"r": jnp.asarray(row)})["r"] == _reference_sums(row)
    raw = x.ravel().view(np.uint8).copy() if x.dtype != bool else x.ravel().astype(np.uint8)
    bits = 1 if x.dtype == bool else 8
    for byte in range(raw.size):
        for bit in range(bits):
            flipped = raw.copy()
            flipped[byte] ^= np.uint8(1 << bit)
            y = flipped.astype(bool) if x.dtype == bool else flipped.view(x.dtype)
            assert checksums.of_state({"x": jnp.asarray(y.reshape(x.shape))})["x"] != sums


@pytest.mark.parametrize("spec", [P("data", "model"), P("model", None), P(None, "data"),
                                  P(), P(None, None, "model")])
def test_sums_are_the_reference_whatever_the_sharding_and_replication(spec):
    mesh = mesh_lib.make_mesh(4, 2)
    shape = (8, 6, 4) if len(spec) == 3 else (16, 24)
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    sharded = jax.device_put(x, NamedSharding(mesh, spec))
    assert checksums.of_state({"w": sharded})["w"] == _reference_sums(x)


def test_a_flipped_bit_moves_the_step_aside_and_resumes_from_the_one_before(tmp_path,
                                                                             caplog):
    ckpt = checkpointing.Checkpointer(str(tmp_path), asynchronous=False)
    w = np.random.default_rng(0).normal(size=(2, 4000)).astype(np.float32)
    state = lambda k: {"params": {"w": jnp.asarray(w[k - 1] if k else w[0] * 0),
                                  "b": jnp.ones(3) * k}}
    for step in (1, 2):
        ckpt.save(step, state(step), {"next_index": 10 * step})
    ckpt.wait()
    flip_a_bit_silently(tmp_path / "2")  # orbax alone reads other finite values
    # Without checksums this restores as other finite values:
    with pytest.raises(checkpointing.DamagedCheckpoint, match="params/w differs"):
        ckpt.restore(2, state(0))
    ok, line = checkpoint_reading.verify_step(str(tmp_path / "2"))
    assert not ok and line == "DAMAGED: params/w differs from the checksum saved with it"
    with pytest.raises(CheckpointError, match=r"init_from: .*/2 is damaged: params/w "
                                              r"differs from the checksum saved with it\. "
                                              r"Use another step"):
        checkpoint_reading.load_state(str(tmp_path / "2"), what="init_from")
    step, restored, data = ckpt.restore_latest_intact(state(0))
    assert step == 1 and data == {"next_index": 10}
    np.testing.assert_array_equal(restored["params"]["w"], w[0])
    assert "checkpoint 2 cannot be used: params/w differs from the checksum" in caplog.text
    assert (tmp_path / "2.unreadable").is_dir() and ckpt.all_steps() == [1]
    ckpt.close()


def test_the_verify_command_prints_a_line_a_step_and_fails_on_damage(tmp_path):
    workdir = tmp_path / "run"
    ckpt = checkpointing.Checkpointer(str(workdir / "checkpoints"), asynchronous=False)
    w = np.random.default_rng(1).normal(size=(2, 4000)).astype(np.float32)
    for i, step in enumerate((3, 6)):
        ckpt.save(step, {"params": {"w": jnp.asarray(w[i])}})
    ckpt.wait()
    ckpt.close()
    flip_a_bit_silently(workdir / "checkpoints" / "6")
    out = subprocess.run([sys.executable, "-m", "big_vision_like.tools.verify_checkpoints",
                          str(workdir), str(tmp_path / "empty")],
                         capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines()]
    assert lines == [
        f"{workdir} step 3: intact: 1 arrays, every array matches its checksum",
        f"{workdir} step 6: DAMAGED: params/w differs from the checksum saved with it",
        f"{tmp_path / 'empty'}: no checkpoints (looked in {tmp_path / 'empty'}/checkpoints)"]
    assert out.returncode == 1, out.stderr[-2000:]
    assert verify_checkpoints.step_folders(str(workdir)) == [3, 6]
