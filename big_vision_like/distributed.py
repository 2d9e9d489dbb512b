"""Starting one process per host on JAX's own distributed runtime.

    initialize()                       # TPU pods, Slurm, Open MPI: detected
    initialize("10.0.0.1:1234", 2, 0)  # explicit: GPU hosts, CPU processes

TPU pods need no arguments; on a Slurm cluster JAX reads the job's
environment; elsewhere give the coordinator's address, the process count and
this process's id (flags or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID). CPU processes talk over gloo. A process that dies is
noticed by the others within `heartbeat_timeout_seconds`.
"""

from __future__ import annotations

import os

import jax


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, heartbeat_timeout_seconds: int = 100,
               initialization_timeout: int = 300) -> None:
    """Joins this process to the job; a single process with no settings does nothing."""
    env = os.environ
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in env:
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in env:
        process_id = int(env["JAX_PROCESS_ID"])
    explicit = coordinator_address is not None
    detectable = any(k in env for k in ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE",
                                        "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS"))
    if not explicit and not detectable:
        return  # one process: nothing to join
    if explicit and (num_processes is None or process_id is None):
        raise ValueError("distributed: with a coordinator address, also give the number "
                         "of processes and this process's id (flags or JAX_NUM_PROCESSES "
                         "and JAX_PROCESS_ID).")
    if jax.config.jax_platforms in (None, "", "cpu") or env.get("JAX_PLATFORMS") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               heartbeat_timeout_seconds=heartbeat_timeout_seconds,
                               initialization_timeout=initialization_timeout)
