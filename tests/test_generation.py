"""Continuous batching of `generate` (`serving.generation`): chunked rows equal one call, deadlines, shutdown.

Rows merged into one call may differ from the same row alone in the last
bits of the float32 state (a bigger matrix product rounds differently), so
the state is compared to 1e-5; the text and token ids are compared exactly.
"""

import concurrent.futures
import functools
import shutil
import threading
import time

import numpy as np
import pytest
import requests

from serving.client import Client
from serving.deadline import Deadline
from serving.errors import Code, ServingError
from serving.generation import GenerationEngine, is_generate_contract
from serving.servable import Servable
from serving.server import ModelServer
from tests.test_streaming import _random_char_model
from zoo import sampling
from zoo.export import export_saved_model


@pytest.fixture(scope="module")
def model():
    return _random_char_model(3)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("generation")
    export_saved_model(model, root, version=1)
    return root


@pytest.fixture(scope="module")
def servable(exported):
    return Servable.load("chars", 1, str(exported / "1"))


@pytest.fixture(params=["fake", pytest.param("tensorflow", marks=pytest.mark.slow)])
def generator(request):
    """The servable (a real exported char model, slow to build) or None for `fake_generate`."""
    return request.getfixturevalue("servable") if request.param == "tensorflow" else None


def _one_call(servable, feeds):
    return servable.run("generate", feeds) if servable is not None else fake_generate(feeds)


def fake_generate(feeds):
    """A NumPy stand-in with `generate`'s contract: the state is a number each fed character moves on.

    Like the real signature, the last drawn character is not fed, and a draw
    depends only on the row's state, seed and position, so chunks concatenate
    to one call exactly.
    """

    def feed(state, char):
        return (state * 3 + ord(char)) % 1000

    width = max(feeds["steps"].tolist(), default=0)
    text, token_ids = np.empty(len(feeds["prompt"]), dtype=object), np.full((len(feeds["prompt"]), width), -1)
    state = np.array(feeds["state"], np.float32)
    for i, prompt in enumerate(feeds["prompt"]):
        s = int(state[i, 0])  # whole numbers: exact in float32 between chunks
        for char in prompt.decode() or "\n":
            s = feed(s, char)
        drawn = []
        for t in range(int(feeds["steps"][i])):
            drawn.append(int(s + feeds["seed"][i] + 7 * (feeds["position"][i] + t)) % 10)
            if t + 1 < feeds["steps"][i]:
                s = feed(s, str(drawn[-1]))
        token_ids[i, : len(drawn)] = drawn
        text[i] = "".join(map(str, drawn)).encode()
        state[i, 0] = s
    return {"text": text, "token_ids": token_ids.astype(np.int32), "state": state}


class CountingRun:
    """A `generate` (the servable's, or the fake), recording the rows of every call; `delay_s` slows each down."""

    def __init__(self, servable=None, delay_s=0.0):
        self._run = functools.partial(servable.run, "generate") if servable is not None else fake_generate
        self.rows = []
        self.delay_s = delay_s
        self.first = threading.Event()

    def __call__(self, feeds):
        time.sleep(self.delay_s)
        outputs = self._run(feeds)
        self.rows.append([(p, int(s)) for p, s in zip(feeds["prompt"], feeds["steps"], strict=True)])
        self.first.set()
        return outputs


def _feeds(servable, rows):
    """`generate` inputs for rows of (prompt, steps, temperature, seed, position), each from its own state."""
    width = servable.signature_defs["generate"].inputs["state"].tensor_shape.dim[1].size if servable else 1
    prompts = np.empty(len(rows), dtype=object)
    prompts[:] = [r[0].encode() for r in rows]
    states = np.random.default_rng(len(rows)).normal(0, 0.5, (len(rows), width)).astype(np.float32)
    if servable is None:
        states = np.round(states * 100)  # the fake keeps whole numbers
    return {
        "prompt": prompts,
        "state": states,
        "steps": np.array([r[1] for r in rows], np.int32),
        "temperature": np.array([r[2] for r in rows], np.float32),
        "top_k": np.array([3 * (i % 2) for i in range(len(rows))], np.int32),
        "seed": np.array([r[3] for r in rows], np.int64),
        "position": np.array([r[4] for r in rows], np.int64),
    }


def _assert_same_outputs(got, want):
    assert got["text"].tolist() == want["text"].tolist()
    np.testing.assert_array_equal(got["token_ids"], want["token_ids"])
    np.testing.assert_allclose(got["state"], want["state"], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_only_the_generate_contract_is_chunked(servable):
    assert is_generate_contract(servable.signature_defs["generate"])
    assert not is_generate_contract(servable.signature_defs["sample"])
    assert not is_generate_contract(servable.signature_defs["serving_default"])


def test_chunk_steps_must_be_positive():
    with pytest.raises(ValueError, match="`chunk_steps` must be a positive integer. Received: chunk_steps=0"):
        GenerationEngine(0)


def test_a_request_advanced_in_chunks_equals_one_call(generator):
    servable = generator
    feeds = _feeds(servable, [("ab", 10, 0.9, 1, 0), ("", 0, 1.0, 2, 5), ("c d", 7, 0.0, 3, 11), ("j", 4, 2.0, 4, 2)])
    run = CountingRun(servable)
    got = GenerationEngine(chunk_steps=3).run("k", run, feeds)
    _assert_same_outputs(got, _one_call(servable, feeds))
    # ceil(10 / 3) calls, and a row leaves once done: the 0-step row after one call, the 4-step after two...
    assert [len(rows) for rows in run.rows] == [4, 3, 2, 1]


def test_rows_joining_mid_way_get_exactly_what_they_get_alone(generator):
    servable = generator
    engine = GenerationEngine(chunk_steps=4, max_rows=16)
    run = CountingRun(servable, delay_s=0.05)
    long = _feeds(servable, [("abc", 40, 0.8, 1, 0)])
    short = [_feeds(servable, [("hi", 5, 1.0, 2, 3), ("", 9, 0.0, 5, 0)]), _feeds(servable, [("a", 6, 1.5, 7, 100)])]
    finished = []

    def submit(name, feeds):
        outputs = engine.run("k", run, feeds)
        finished.append(name)
        return outputs

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        first = pool.submit(submit, "long", long)
        assert run.first.wait(10)  # the long request is under way before the others arrive
        others = [pool.submit(submit, f"short{i}", feeds) for i, feeds in enumerate(short)]
        results = [first.result(30)] + [f.result(30) for f in others]
    for feeds, got in zip([long, *short], results, strict=True):
        _assert_same_outputs(got, _one_call(servable, feeds))
    assert finished[-1] == "long"  # the short ones did not wait for it
    sizes = [len(rows) for rows in run.rows]
    assert sizes[0] == 1 and max(sizes) >= 3 and sizes[-1] == 1  # joined mid-way, left when done
    # Every row costs ceil(steps / 4) row-calls: no call carries a finished row.
    assert sum(sizes) == 10 + (2 + 3) + 2
    assert not engine.busy


def test_a_dropped_request_stops_within_one_chunk():
    servable = None  # the fake: these test the bookkeeping, not the model
    engine = GenerationEngine(chunk_steps=2, max_rows=8)
    run = CountingRun(servable, delay_s=0.05)
    deadline = Deadline()
    feeds = _feeds(servable, [("ab", 400, 1.0, 1, 0)])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(engine.run, "k", run, feeds, deadline)
        assert run.first.wait(10)
        deadline.cancel()
        calls_at_cancel = len(run.rows)
        with pytest.raises(ServingError, match="The client cancelled the request") as caught:
            future.result(10)
    assert caught.value.code == Code.CANCELLED
    time.sleep(0.2)
    assert len(run.rows) <= calls_at_cancel + 1 and not engine.busy


def test_alone_a_request_past_its_deadline_stops_within_one_chunk():
    servable = None  # the fake: these test the bookkeeping, not the model
    run = CountingRun(servable, delay_s=0.05)
    feeds = _feeds(servable, [("ab", 400, 1.0, 1, 0)])
    with pytest.raises(ServingError, match="Deadline Exceeded") as caught:
        GenerationEngine(chunk_steps=2).run("k", run, feeds, Deadline(0.2))
    assert caught.value.code == Code.DEADLINE_EXCEEDED
    assert len(run.rows) <= 0.2 / 0.05 + 1


def test_a_full_lane_answers_unavailable():
    servable = None  # the fake: these test the bookkeeping, not the model
    engine = GenerationEngine(chunk_steps=1, max_rows=1, max_queued_rows=1)
    run = CountingRun(servable, delay_s=0.05)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(engine.run, "k", run, _feeds(servable, [("a", 20, 1.0, 1, 0)]))
        assert run.first.wait(10)
        second = pool.submit(engine.run, "k", run, _feeds(servable, [("b", 2, 1.0, 1, 0)]))
        time.sleep(0.05)
        with pytest.raises(ServingError, match="The batch scheduling queue to which this task was submitted is full"):
            engine.run("k", run, _feeds(servable, [("c", 2, 1.0, 1, 0)]))
        assert first.result(30)["text"][0] and second.result(30)["text"][0]


def test_stop_ends_the_lanes_within_one_chunk():
    before = set(threading.enumerate())
    servable = None  # the fake: these test the bookkeeping, not the model
    engine = GenerationEngine(chunk_steps=2, max_rows=8)
    run = CountingRun(servable, delay_s=0.05)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(engine.run, "k", run, _feeds(servable, [("ab", 4000, 1.0, 1, 0)]))
        assert run.first.wait(10)
        start = time.perf_counter()
        engine.stop()
        assert time.perf_counter() - start < 2
        with pytest.raises(ServingError, match="The server is shutting down") as caught:
            future.result(10)
    assert caught.value.code == Code.UNAVAILABLE and not engine.busy
    assert not _engine_threads(before)
    with pytest.raises(ServingError, match="The server is shutting down"):
        engine.run("k", run, _feeds(servable, [("a", 1, 1.0, 1, 0)]))


# ------------------------------------------------------------ through the server


def _serve(exported, tmp_path, **kwargs):
    base = tmp_path / "chars"
    shutil.copytree(exported / "1", base / "1")
    return ModelServer("chars", base, file_system_poll_wait_seconds=0, **kwargs)


def test_an_idle_lane_serves_the_next_request_in_its_thread_then_ends(monkeypatch):
    from serving import generation

    monkeypatch.setattr(generation, "LANE_IDLE_S", 0.3)
    engine = GenerationEngine(chunk_steps=2, max_rows=8)
    threads, fake = [], CountingRun()

    def run(feeds):
        threads.append(threading.current_thread())
        return fake(feeds)

    feeds = _feeds(None, [("ab", 3, 1.0, 1, 0)])
    first = engine.run("k", run, feeds)
    time.sleep(0.1)  # idle, not yet past LANE_IDLE_S
    _assert_same_outputs(engine.run("k", run, feeds), first)
    assert len(set(threads)) == 1 and not engine.busy  # one thread for both; idling is not work
    threads[0].join(2)
    assert not threads[0].is_alive()  # ended once idle for LANE_IDLE_S
    _assert_same_outputs(engine.run("k", run, feeds), first)  # a new lane, after the old one ended
    assert threads[-1] is not threads[0]
    engine.stop()


def _engine_threads(before):
    """Lane and batch threads started since `before` (a set of threads): an earlier test's idle lane may still be
    waiting out `LANE_IDLE_S`."""
    return [t for t in set(threading.enumerate()) - before
            if t.name == "generation-lane" or t.name.startswith("batch-thread")]


@pytest.mark.slow
def test_concurrent_streams_with_batching_equal_in_process_sampling(exported, model, tmp_path):
    from serving.batching import BatchingOptions

    before = set(threading.enumerate())
    server = _serve(exported, tmp_path, batching=BatchingOptions(max_batch_size=16), generation_chunk_steps=3)
    with server:

        def stream(i):
            protocol = "grpc" if i % 2 else "rest"
            target = server.grpc_target if protocol == "grpc" else server.rest_target
            with Client(target, protocol=protocol) as client:
                return "".join(client.stream("chars", "ab", 20 + 5 * i, 0.9, 0, i, chunk_size=7 + i))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            texts = list(pool.map(stream, range(8)))
        metrics = requests.get(server.rest_target + "/monitoring/prometheus/metrics", timeout=10).text
    for i, text in enumerate(texts):
        assert text == sampling.sample(model, "ab", 20 + 5 * i, 0.9, 0, i)
    assert not _engine_threads(before)
    # Every character drawn is counted once, under the model's name; the lane's steps are shared by its rows.
    calls, steps, row_steps = server.metrics.generation("chars")
    assert row_steps == sum(20 + 5 * i for i in range(8)) and calls <= steps <= row_steps
    assert f':rnn_zoo:serving:generation:row_step_count{{model_name="chars"}} {row_steps}' in metrics


@pytest.mark.slow
@pytest.mark.parametrize("batching", [False, True])
def test_a_request_past_its_deadline_stops_and_stop_leaves_no_engine_thread(exported, servable, tmp_path, batching):
    from serving.batching import BatchingOptions

    options = BatchingOptions(max_batch_size=8) if batching else None
    before = set(threading.enumerate())
    server = _serve(exported, tmp_path, batching=options, generation_chunk_steps=2, rest_api_timeout_in_ms=300)
    server.start()
    try:
        inputs = {name: array[:1] for name, array in _feeds(servable, [("ab", 4096, 1.0, 1, 0)]).items()}
        with Client(server.rest_target, retries=0) as rest:
            with pytest.raises(ServingError, match="Deadline Exceeded") as caught:
                rest.predict("chars", inputs, signature_name="generate")
        assert caught.value.code == Code.DEADLINE_EXCEEDED
        with Client(server.grpc_target, protocol="grpc", timeout=0.3, retries=0) as grpc_client:
            with pytest.raises(ServingError) as caught:
                grpc_client.predict("chars", inputs, signature_name="generate")
        assert caught.value.code == Code.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 2
        while server.executor.engine.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not server.executor.engine.busy  # both stopped within a chunk, not after 4096 steps
        # A request still running when the server stops ends within a chunk too.
        abandoned = threading.Thread(
            target=lambda: pytest.raises(ServingError, server.dataplane.predict,
                                         server.dataplane.resolve("chars"), "generate", inputs)
        )
        abandoned.start()
        time.sleep(0.2)
        assert server.executor.engine.busy
    finally:
        server.stop(grace=0)
    abandoned.join(5)
    assert not abandoned.is_alive() and not server.executor.engine.busy and not _engine_threads(before)


@pytest.mark.slow
def test_a_rest_client_hanging_up_stops_its_request(exported, servable, tmp_path):
    inputs = {name: array[:1] for name, array in _feeds(servable, [("ab", 4096, 1.0, 1, 0)]).items()}
    body = {"signature_name": "generate", "inputs": {k: v.tolist() for k, v in inputs.items() if k != "prompt"}}
    body["inputs"]["prompt"] = ["ab"]
    with _serve(exported, tmp_path, generation_chunk_steps=2) as server:  # the server's own timeout: 30 s
        with pytest.raises(requests.Timeout):
            requests.post(f"{server.rest_target}/v1/models/chars:predict", json=body, timeout=0.5)
        deadline = time.monotonic() + 3
        while server.executor.engine.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not server.executor.engine.busy  # stopped within a chunk of the hang-up, not after 4096 steps


def test_a_request_failing_in_a_merged_call_fails_alone():
    def picky(feeds):
        if b"!" in feeds["prompt"].tolist():
            raise ServingError(Code.INVALID_ARGUMENT, "prompt holds a character outside the vocabulary of the model")
        return fake_generate(feeds)

    engine = GenerationEngine(chunk_steps=2, max_rows=8)
    run = CountingRun(delay_s=0.05)
    run._run = picky
    good, bad = _feeds(None, [("ab", 9, 1.0, 1, 0)]), _feeds(None, [("!", 3, 1.0, 2, 0)])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(engine.run, "k", run, good)
        assert run.first.wait(10)
        failing = pool.submit(engine.run, "k", run, bad)
        with pytest.raises(ServingError, match="outside the vocabulary"):
            failing.result(10)
        _assert_same_outputs(first.result(10), fake_generate(good))
