"""The training loop under `tf.distribute`: two logical CPUs (MirroredStrategy) and two worker processes on
127.0.0.1 (MultiWorkerMirroredStrategy from TF_CONFIG) reach the weights one device reaches with the same
global batch, carried character state included, and a multi-worker run resumes after a worker is killed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from training import runs
from training.loop import Trainer
from training.recipes import recipe_for

pytestmark = pytest.mark.slow

TEXT = "hello world, hello zoo. " * 400

# Run as `python -c WORKER <recipe fields as JSON> [kill-at-step]`; prints the chief's weights as JSON.
WORKER = """
import json, os, signal, sys
from training.loop import Trainer
from training.recipes import recipe_for
fields = json.loads(sys.argv[1])
trainer = Trainer(recipe_for(fields.pop("model"), **fields))
if len(sys.argv) > 2 and not trainer.chief:  # this worker dies, without a word, before update `kill_at`
    kill_at, update = int(sys.argv[2]), trainer._one_update
    def dying(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return update(step)
    trainer._one_update = dying
trainer.fit(verbose=0)
if trainer.chief:
    print(json.dumps({"replicas": trainer.strategy.num_replicas_in_sync,
                      "weights": [w.numpy().tolist() for w in trainer.model.weights]}))
"""

MIRRORED_PRELUDE = """
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
"""


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _environment(**extra):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _workers(fields, kill_at=None):
    """Starts two workers of one cluster; returns their processes (worker 0, the chief, first)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    argv = [sys.executable, "-c", WORKER, json.dumps(fields)] + ([str(kill_at)] if kill_at is not None else [])
    return [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_environment(TF_CONFIG=json.dumps({"cluster": cluster,
                                                                    "task": {"type": "worker", "index": i}})))
            for i in range(2)]


def _chief_weights(processes, timeout=400):
    outputs = [p.communicate(timeout=timeout) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    result = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert result["replicas"] == 2
    return result["weights"]


def _assert_same_weights(model, weights):
    assert len(model.weights) == len(weights)
    for a, b in zip(model.weights, weights):
        np.testing.assert_allclose(a.numpy(), np.array(b), rtol=1e-4, atol=1e-5)


def _adder(tmp_path, name, **fields):
    return {"model": "binary_adder", "steps": 6, "batch_size": 8, "train_bits": 4, "test_sums": 20,
            "checkpoint_every": 2, "eval_every": 100, "out_dir": str(tmp_path / name), **fields}


def test_two_workers_reach_the_weights_of_one_and_resume_after_a_worker_is_killed(tmp_path):
    single = Trainer(recipe_for("binary_adder", **_adder(tmp_path, "single")))
    single.fit(verbose=0)

    _assert_same_weights(single.model, _chief_weights(_workers(_adder(tmp_path, "two"))))

    # Worker 1 is killed before update 5; the chief, stuck in the next all-reduce, is stopped once its step-4
    # checkpoint is on disk, as an orchestrator restarts a job that lost a worker. The restarted job resumes.
    fields = _adder(tmp_path, "killed")
    chief, doomed = _workers(fields, kill_at=4)
    assert doomed.wait(timeout=400) == -signal.SIGKILL
    checkpoint = tmp_path / "killed" / "checkpoints" / "ckpt-4.index"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.5)
    chief.kill()
    chief.communicate()
    assert checkpoint.exists() and not (tmp_path / "killed" / "checkpoints" / "ckpt-6.index").exists()
    _assert_same_weights(single.model, _chief_weights(_workers(fields)))
    assert runs.run_cost(tmp_path / "killed")["segments"] == 2  # the log shows the resumed segment


def test_two_logical_cpus_carry_character_state_like_one_device(tmp_path):
    text = tmp_path / "hello.txt"
    text.write_text(TEXT)
    fields = {"model": "char_gru", "text": str(text), "steps": 4, "batch_size": 4, "seq_len": 8, "eval_every": 100,
              "eval_chars": 200, "threads": 0, "overrides": {"units": 8, "embedding_dim": 4},
              # Each replica draws its own dropout masks, and bfloat16 sums differ by order: the two cannot match.
              # The recipe's weight averaging stays on: the averages must match too.
              "dropout": 0.0, "mixed_precision": False}
    code = MIRRORED_PRELUDE + WORKER
    result = subprocess.run([sys.executable, "-c", code, json.dumps({**fields, "out_dir": str(tmp_path / "m")})],
                            capture_output=True, text=True, timeout=400, env=_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    mirrored = json.loads(result.stdout.strip().splitlines()[-1])
    assert mirrored["replicas"] == 2
    single = Trainer(recipe_for("char_gru", **{**fields, "out_dir": str(tmp_path / "s")}))
    single.fit(verbose=0)
    _assert_same_weights(single.model, mirrored["weights"])


def test_a_batch_that_does_not_split_evenly_over_the_replicas_is_refused(tmp_path):
    code = MIRRORED_PRELUDE + WORKER
    fields = _adder(tmp_path, "odd", batch_size=7)
    result = subprocess.run([sys.executable, "-c", code, json.dumps(fields)], capture_output=True, text=True,
                            timeout=400, env=_environment())
    assert result.returncode != 0
    assert "`batch_size` must be a multiple of the 2 replicas, each reading an equal share. Received: batch_size=7" \
        in result.stderr
