import jax
import jax.numpy as jnp
import numpy as np
import pytest

from big_vision_like import mesh as mesh_lib
from input_pipeline.stream import batches
from input_pipeline.stream.device import DevicePrefetcher


def test_eight_fake_devices():
    assert jax.device_count() == 8


@pytest.mark.parametrize("data,model", [(8, 1), (4, 2), (2, 4), (1, 8)])
def test_batches_are_global_arrays_split_over_data(data, model):
    mesh = mesh_lib.make_mesh(data, model)
    host = [{"image": np.random.default_rng(i).normal(size=(16, 4, 4, 3)).astype(np.float32),
             "labels": np.full((16, 5), i, np.float32)} for i in range(3)]
    with DevicePrefetcher(iter(host), mesh_lib.batch_sharding(mesh)) as it:
        out = list(it)
    assert len(out) == 3
    for want, got in zip(host, out):
        arr = got["image"]
        assert arr.shape == (16, 4, 4, 3)
        np.testing.assert_array_equal(np.asarray(arr), want["image"])
        # Each device holds a 16/data slice of the batch, replicated over `model`.
        assert {s.data.shape[0] for s in arr.addressable_shards} == {16 // data}
        assert len(arr.addressable_shards) == 8


def test_prefetcher_reraises_host_errors_in_order():
    def host():
        yield {"x": np.zeros((8, 2), np.float32)}
        raise batches.InputPipelineError("broken record")

    it = DevicePrefetcher(host(), mesh_lib.batch_sharding(mesh_lib.make_mesh()))
    assert next(it)["x"].shape == (8, 2)
    with pytest.raises(batches.InputPipelineError, match="broken record"):
        next(it)
    it.close()


def test_mesh_sizes_must_match_the_devices():
    assert mesh_lib.make_mesh(-1, 2).shape == {"data": 4, "model": 2}
    with pytest.raises(ValueError, match="product is 8"):
        mesh_lib.make_mesh(3, 2)


@pytest.mark.parametrize("data,model,batch,seen", [(8, 1, 16, 2), (2, 4, 16, 8), (1, 8, 16, 16),
                                                   (8, 1, 12, 12)])
def test_per_data_shard_runs_on_each_devices_share_of_the_batch(data, model, batch, seen):
    """`seen`: the batch `fn` sees; the whole one without several `data`
    devices or when the batch does not split evenly."""
    mesh = mesh_lib.make_mesh(data, model)

    def fn(x, offset):  # (an output that ignores x fails to compile in shard_map)
        return x[:, 0].astype(jnp.int32) + x.shape[0] + offset

    def traced(x):
        with mesh_lib.tracing_on(mesh):
            return mesh_lib.per_data_shard(fn, (0, None))(x, jnp.int32(100))

    x = jax.device_put(np.zeros((batch, 3), np.float32), mesh_lib.batch_sharding(mesh)
                       if batch % data == 0 else None)
    np.testing.assert_array_equal(np.asarray(jax.jit(traced)(x)), np.full(batch, seen + 100))
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda x: mesh_lib.per_data_shard(
        fn, (0, None))(x, 100))(x)), np.full(batch, batch + 100))  # no mesh in context
