"""Routing checked requests (`serving.execution`) and the command-line flags of batching and threads."""

import threading

import numpy as np
import pytest

from serving.__main__ import build_parser, main
from serving.batching import BatchingOptions
from serving.errors import ServingError
from serving.execution import Executor, parse_bool, server_options
from serving.generation import GENERATE_INPUTS, GENERATE_OUTPUTS
from serving.metrics import Metrics


class _Info:
    def __init__(self, dtype):
        self.dtype = dtype


class _Signature:
    def __init__(self, inputs, outputs):
        self.inputs = {alias: _Info(dtype) for alias, dtype in inputs.items()}
        self.outputs = {alias: _Info(dtype) for alias, dtype in outputs.items()}


class FakeServable:
    """`generate` (the contract) and `double`; records the thread and rows of every call."""

    name = "fake"
    signature_defs = {
        "generate": _Signature(GENERATE_INPUTS, GENERATE_OUTPUTS),
        "double": _Signature({"x": 1}, {"y": 1}),
    }

    def __init__(self):
        self.calls = []

    def run(self, key, feeds):
        self.calls.append((key, threading.current_thread().name, len(next(iter(feeds.values())))))
        if key == "double":
            return {"y": 2 * feeds["x"]}
        from tests.test_generation import fake_generate

        return fake_generate(feeds)


def _generate_feeds(rows, steps):
    prompts = np.empty(rows, dtype=object)
    prompts[:] = [b"a"] * rows
    return {"prompt": prompts, "state": np.zeros((rows, 1), np.float32), "steps": np.full(rows, steps, np.int32),
            "temperature": np.ones(rows, np.float32), "top_k": np.zeros(rows, np.int32),
            "seed": np.arange(rows, dtype=np.int64), "position": np.zeros(rows, np.int64)}


@pytest.mark.parametrize("batching", [None, BatchingOptions(max_batch_size=4, num_batch_threads=1)])
def test_generate_runs_in_chunks_and_other_signatures_are_batched_or_direct(batching):
    executor, servable = Executor(batching, generation_chunk_steps=3), FakeServable()
    try:
        out = executor.run(servable, "generate", _generate_feeds(2, 7))
        assert out["token_ids"].shape == (2, 7)
        assert [c[2] for c in servable.calls] == [2, 2, 2]  # ceil(7 / 3) chunks
        np.testing.assert_array_equal(executor.run(servable, "double", {"x": np.ones(2)})["y"], [2, 2])
        thread = servable.calls[-1][1]
        assert thread.startswith("batch-thread") if batching else thread == threading.current_thread().name
    finally:
        executor.stop()


@pytest.mark.parametrize("batching", [None, BatchingOptions(max_batch_size=4, num_batch_threads=1)])
def test_generation_calls_steps_and_characters_are_counted_per_model(batching):
    metrics = Metrics()
    executor, servable = Executor(batching, generation_chunk_steps=3, metrics=metrics), FakeServable()
    feeds = _generate_feeds(2, 7)
    feeds["steps"] = np.array([7, 2], np.int32)
    try:
        executor.run(servable, "generate", feeds)
        executor.run(servable, "double", {"x": np.ones(2)})
    finally:
        executor.stop()
    # steps (3, 2), then (3,) and (1,) once the short row is done: 3 calls, 3 + 3 + 1 steps, 5 + 3 + 1 characters
    assert metrics.generation("fake") == (3, 7, 9)
    text = metrics.exposition().decode()
    assert ':rnn_zoo:serving:generation:step_count{model_name="fake"} 7' in text
    assert ':rnn_zoo:serving:generation:row_step_count{model_name="fake"} 9' in text
    assert "# TYPE :rnn_zoo:serving:generation:call_count counter" in text


def test_with_chunking_off_generate_is_one_call():
    executor, servable = Executor(None, generation_chunk_steps=0), FakeServable()
    executor.run(servable, "generate", _generate_feeds(1, 7))
    assert len(servable.calls) == 1


def test_with_batching_a_generate_request_over_max_batch_size_is_refused_as_tf_serving_does():
    executor = Executor(BatchingOptions(max_batch_size=2, num_batch_threads=1))
    try:
        with pytest.raises(ServingError, match="Task size 3 is larger than maximum input batch size 2"):
            executor.run(FakeServable(), "generate", _generate_feeds(3, 1))
    finally:
        executor.stop()


@pytest.mark.parametrize(
    "argv, batching",
    [([], False), (["--enable_batching"], True), (["--enable_batching=true"], True),
     (["--enable_batching=false"], False), (["--enable_batching", "--port=1"], True)],
)
def test_enable_batching_takes_tf_servings_boolean_forms(argv, batching):
    args = build_parser().parse_args(["--model_base_path=m", *argv])
    assert (server_options(args)["batching"] is not None) is batching


def test_the_parameters_file_is_read_only_with_batching_on(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 8 } max_enqueued_batches { value: 3 }")
    args = build_parser().parse_args(["--enable_batching", f"--batching_parameters_file={path}"])
    options = server_options(args)["batching"]
    assert (options.max_batch_size, options.max_enqueued_batches, options.batch_timeout_micros) == (8, 3, 0)
    assert server_options(build_parser().parse_args([f"--batching_parameters_file={path}"]))["batching"] is None


def test_parse_bool_refuses_other_words():
    with pytest.raises(ValueError, match="expected true or false. Received: 'maybe'"):
        parse_bool("maybe")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--enable_batching", "--batching_parameters_file={bad}"],
         "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; expected 8"),
        (["--generation_chunk_steps=-1"],
         "--generation_chunk_steps must be >= 0. Received: --generation_chunk_steps=-1"),
        (["--grpc_max_threads=0"], "--grpc_max_threads must be >= 1. Received: --grpc_max_threads=0"),
        (["--rest_api_num_threads=0"], "--rest_api_num_threads must be >= 1. Received: --rest_api_num_threads=0"),
        (["--tensorflow_intra_op_parallelism=-1"], "--tensorflow_intra_op_parallelism must be >= 0 (0: TensorFlow's "
         "choice). Received: --tensorflow_intra_op_parallelism=-1"),
    ],
)
def test_bad_batching_flags_stop_the_command_before_loading(tmp_path, capsys, flags, message):
    bad = tmp_path / "bad.txt"
    bad.write_text("max_batch_size { value: 8 } allowed_batch_sizes: 4")
    with pytest.raises(SystemExit) as caught:
        main(["--model_base_path=nowhere", *[f.format(bad=bad) for f in flags]])
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_tensorflow_thread_flags_size_tensorflows_pools_before_its_first_op():
    # TF Serving's flags; a fresh process, since TensorFlow makes its pools once, at its first op.
    import subprocess
    import sys

    code = ("from serving.__main__ import build_parser; from serving.execution import apply_tensorflow_threads; "
            "apply_tensorflow_threads(build_parser().parse_args(['--model_base_path=m', "
            "'--tensorflow_intra_op_parallelism=1', '--tensorflow_inter_op_parallelism=3'])); import tensorflow as tf; "
            "tf.constant(1.0) + 1.0; print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["1", "3"]
    defaults = build_parser().parse_args(["--model_base_path=m"])
    assert (defaults.tensorflow_intra_op_parallelism, defaults.tensorflow_inter_op_parallelism) == (0, 0)


@pytest.mark.parametrize(("intra", "inter", "cores", "one_thread"), [
    (1, 1, 2, True),  # both flags at 1
    (1, 2, 2, False),  # the serving figures' setting: the inter-op threads run the column blocks side by side
    (2, 1, 2, False),
    (0, 0, 1, True),  # TensorFlow's choice on one core
    (0, 0, 2, False),
    (1, 0, 2, False),
])
def test_the_server_takes_whole_kernel_forms_on_one_thread_only(intra, inter, cores, one_thread, monkeypatch):
    import tensorflow as tf

    from zoo.layers import _loop

    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: intra)
    monkeypatch.setattr(tf.config.threading, "get_inter_op_parallelism_threads", lambda: inter)
    monkeypatch.setattr(_loop.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert _loop.runs_on_one_thread() is one_thread
