"""The `tf.distribute` strategy the training loop runs under, and what each worker writes.

- `TF_CONFIG` naming a cluster of several tasks: `MultiWorkerMirroredStrategy`,
  one replica per local device on each host, gradients summed across hosts.
- Otherwise several local GPUs (or logical CPUs configured before TensorFlow
  starts): `MirroredStrategy`.
- Otherwise TensorFlow's default strategy: one device, no distribution cost.

Every worker computes the same global batch from the step (the data is a
function of it) and each replica takes its rows, so no input pipeline has to be
shared. The chief (task `chief`, or `worker` 0 in a cluster without one)
writes the run folder; the other workers write theirs under
`<out_dir>/workers/<task>-<index>`, because saving a checkpoint is a collective
step that every worker must take. All of them resume from the chief's checkpoint.
"""

import json
import os
import pathlib

import tensorflow as tf

__all__ = ["strategy", "is_chief", "worker_dir", "shard"]


def _cluster():
    """(cluster spec dict, task dict) of `TF_CONFIG`, or (None, None) when it names no cluster of several tasks."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None, None
    try:
        config = json.loads(raw)
        cluster, task = config.get("cluster", {}), config.get("task", {})
    except (json.JSONDecodeError, AttributeError) as error:
        raise ValueError(f"`TF_CONFIG` must be JSON with 'cluster' and 'task'. Received: TF_CONFIG={raw!r}") from error
    if sum(len(addresses) for addresses in cluster.values()) < 2:
        return None, None
    return cluster, task


def strategy():
    """The strategy for this process (see the module's docstring); make it before any other TensorFlow op."""
    cluster, _ = _cluster()
    if cluster is not None:
        return tf.distribute.MultiWorkerMirroredStrategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def _task():
    cluster, task = _cluster()
    if cluster is None:
        return None
    return task.get("type", "worker"), int(task.get("index", 0)), "chief" in cluster


def is_chief():
    """Whether this process writes the run folder, the logs and the progress bar."""
    task = _task()
    if task is None:
        return True
    kind, index, has_chief = task
    return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


def worker_dir(out_dir, chief=None):
    """The folder this process writes: `out_dir` for the chief (or when `chief` is True)."""
    if chief or (chief is None and is_chief()):
        return pathlib.Path(out_dir)
    kind, index, _ = _task()
    return pathlib.Path(out_dir) / "workers" / f"{kind}-{index}"


def shard(strategy, batch):
    """Per-replica values of a global NumPy batch (a nest of arrays): replica r takes the r-th equal block of
    rows, on every worker alike."""
    count = strategy.num_replicas_in_sync

    def rows(context):
        r = context.replica_id_in_sync_group
        return tf.nest.map_structure(lambda x: x[r * (len(x) // count) : (r + 1) * (len(x) // count)], batch)

    return strategy.experimental_distribute_values_from_function(rows)
