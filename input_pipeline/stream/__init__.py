"""From a source's records to the device: the stream of one run.

batches      per-host shards, shuffling, preprocessing, batching, padded
             evaluation, exact resume (`HostIterator.state`)
device       host batches -> global sharded jax.Arrays, prefetched
errors       what a failed read says (record_files finds the damaged file)
"""
