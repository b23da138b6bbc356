"""Greedy decoding, sampling and beam search: on hand-built decoders whose
probabilities are known exactly, on a Seq2Seq model, and through the exported
SavedModel signatures, which must give exactly the in-process results."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tests.reference import randomize_weights
from zoo import decoding
from zoo.export import export_saved_model
from zoo.models.seq2seq import Seq2Seq

END, A, B_, START = 0, 1, 2, 3  # the hand-built decoders' tokens
TREE_VOCAB, TREE_DEPTH = 4, 3


def tree_step(probabilities, default=(0.8, 0.1, 0.1, 0.0)):
    """A decoder whose next-token distribution depends only on the prefix.

    `probabilities` maps a prefix (tuple of tokens) to P(end, a, b, start).
    The state is the prefix's node in the complete 4-ary tree, numbered so
    that the child of node n by token k is 4n + k + 1.
    """
    prefixes = [()]
    for prefix in prefixes:
        if len(prefix) < TREE_DEPTH:
            prefixes.extend(prefix + (token,) for token in range(TREE_VOCAB))
    with np.errstate(divide="ignore"):  # start has probability 0: log 0 = -inf, never chosen
        table = tf.constant(np.log([probabilities.get(p, default) for p in prefixes]), tf.float32)

    def step(tokens, states):
        node = states[0][:, 0]
        node = tf.where(tokens == START, 0, node * TREE_VOCAB + tokens + 1)
        node = tf.minimum(node, len(prefixes) - 1)
        return tf.gather(table, node), [node[:, None]]

    return step


def _tree_inputs(batch, max_length=TREE_DEPTH):
    return {
        "states": [tf.zeros((batch, 1), tf.int32)],
        "start_id": START,
        "end_id": END,
        "vocab_size": TREE_VOCAB,
        "max_length": tf.fill([batch], max_length),
    }


def tree_greedy(step, batch=1):
    zeros = tf.zeros([batch], tf.int32)
    return decoding.sample_ids(
        step, **_tree_inputs(batch), temperature=tf.zeros([batch]), top_k=zeros, seed=tf.zeros([batch], tf.int64)
    )


def tree_beam(step, widths, alphas, max_length=TREE_DEPTH):
    batch = len(widths)
    return decoding.beam_search_ids(
        step,
        **_tree_inputs(batch, max_length),
        beam_width=tf.constant(widths, tf.int32),
        alpha=tf.constant(alphas, tf.float32),
    )


def _tokens(row):
    return [int(t) for t in row if t >= 0]


GREEDY_IS_WRONG = {
    (): (0.0, 0.6, 0.4, 0.0),
    (A,): (0.5, 0.25, 0.25, 0.0),
    (B_,): (0.9, 0.05, 0.05, 0.0),
}


def test_greedy_takes_the_likelier_first_token_and_misses_the_best_sequence():
    out = tree_greedy(tree_step(GREEDY_IS_WRONG))
    assert _tokens(out["token_ids"][0]) == [A]
    np.testing.assert_allclose(out["log_prob"][0], np.log(0.6 * 0.5), rtol=1e-6)


def test_beam_search_finds_the_higher_probability_sequence():
    out = tree_beam(tree_step(GREEDY_IS_WRONG), widths=[2], alphas=[0.0])
    assert _tokens(out["token_ids"][0]) == [B_]
    np.testing.assert_allclose(out["log_prob"][0], np.log(0.4 * 0.9), rtol=1e-6)
    np.testing.assert_allclose(out["score"][0], np.log(0.4 * 0.9), rtol=1e-6)  # α = 0: score is log P


def test_beam_width_one_is_greedy_on_the_tree():
    step = tree_step(GREEDY_IS_WRONG)
    beam, greedy = tree_beam(step, widths=[1], alphas=[0.0]), tree_greedy(step)
    np.testing.assert_array_equal(beam["token_ids"], greedy["token_ids"])
    np.testing.assert_array_equal(beam["log_prob"], greedy["log_prob"])


SHORT_OR_LONG = {(): (0.5, 0.45, 0.05, 0.0), (A,): (0.95, 0.025, 0.025, 0.0)}


def test_length_penalty_turns_the_choice_to_the_longer_sequence():
    # P(end) = 0.5 beats P(a, end) = 0.4275; with α = 2 the longer one's score
    # log 0.4275 / (7/6)² = −0.625 beats log 0.5 / 1 = −0.693.
    out = tree_beam(tree_step(SHORT_OR_LONG), widths=[2, 2], alphas=[0.0, 2.0])
    assert _tokens(out["token_ids"][0]) == [] and _tokens(out["token_ids"][1]) == [A]
    np.testing.assert_allclose(out["log_prob"], np.log([0.5, 0.45 * 0.95]), rtol=1e-6)
    np.testing.assert_allclose(out["score"], [np.log(0.5), np.log(0.45 * 0.95) / (7 / 6) ** 2], rtol=1e-6)


def _exhaustive_best(probabilities, alpha):
    """Best ended sequence of at most TREE_DEPTH tokens by log P / lp, by enumeration."""
    best = None
    for length in range(TREE_DEPTH):
        for body in itertools.product([A, B_], repeat=length):
            sequence = (*body, END)
            log_p = sum(np.log(probabilities[sequence[:i]][token]) for i, token in enumerate(sequence))
            score = log_p / ((5 + len(sequence)) / 6) ** alpha
            if best is None or score > best[0]:
                best = (score, list(body), log_p)
    return best


@pytest.mark.parametrize("alpha", [0.0, 0.8, 3.0])
def test_a_beam_wider_than_the_tree_is_exhaustive_search(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    prefixes = [p for n in range(TREE_DEPTH) for p in itertools.product([A, B_], repeat=n)]
    probabilities = {p: (*rng.dirichlet([1.0, 1.0, 1.0]), 0.0) for p in prefixes}
    score, tokens, log_p = _exhaustive_best(probabilities, alpha)
    out = tree_beam(tree_step(probabilities), widths=[16], alphas=[alpha])
    assert _tokens(out["token_ids"][0]) == tokens
    np.testing.assert_allclose([out["score"][0], out["log_prob"][0]], [score, log_p], rtol=1e-5)


def test_a_row_where_nothing_ends_returns_its_best_unfinished_hypothesis():
    never_ends = {(): (0.0, 0.7, 0.3, 0.0), (A,): (0.0, 0.2, 0.8, 0.0)}
    out = tree_beam(tree_step(never_ends, default=(0.0, 0.5, 0.5, 0.0)), widths=[3], alphas=[0.0], max_length=2)
    assert _tokens(out["token_ids"][0]) == [A, B_]
    np.testing.assert_allclose(out["log_prob"][0], np.log(0.7 * 0.8), rtol=1e-6)


def test_core_arguments_are_checked():
    step = tree_step(GREEDY_IS_WRONG)
    inputs = {**_tree_inputs(1), "end_id": 4}
    with pytest.raises(ValueError, match=r"`end_id` must be a token id in \[0, 4\). Received: end_id=4"):
        decoding.beam_search_ids(step, **inputs, beam_width=tf.constant([2]), alpha=tf.constant([0.0]))
    inputs = {**_tree_inputs(1), "start_id": -1}
    with pytest.raises(ValueError, match=r"Received: start_id=-1"):
        decoding.sample_ids(
            step, **inputs, temperature=tf.zeros([1]), top_k=tf.zeros([1], tf.int32), seed=tf.zeros([1], tf.int64)
        )


# --- a Seq2Seq model, in process and exported ---

SOURCES = ["12+345", "7", "", "99+1"]


@pytest.fixture(scope="module")
def model():
    model = Seq2Seq("0123456789+", "0123456789", units=10, embedding_dim=5, cell="peephole_lstm",
                    bidirectional_encoder=True)
    sources, target_in, _, _ = model.prepare_batch(SOURCES, ["357", "7", "", "100"])
    model((sources, target_in))
    return randomize_weights(model, np.random.default_rng(5), scale=0.8)


@pytest.fixture(scope="module")
def version_dir(model, tmp_path_factory):
    return export_saved_model(model, tmp_path_factory.mktemp("models") / "seq2seq")


@pytest.fixture(scope="module")
def loaded(version_dir):
    return tf.saved_model.load(str(version_dir))


def _rows(**values):
    """Per-row signature inputs for SOURCES from {name: (list or scalar, dtype)}."""
    n = len(SOURCES)
    out = {"source": tf.constant(SOURCES)}
    for name, (value, dtype) in values.items():
        out[name] = tf.constant(value if isinstance(value, list) else [value] * n, dtype)
    return out


def _assert_same(exported, in_process):
    assert [t.decode() for t in exported["text"].numpy()] == in_process["text"]
    for key in exported:
        if key != "text":
            np.testing.assert_array_equal(exported[key].numpy(), in_process[key])


@pytest.mark.slow
def test_beam_width_one_is_greedy_on_the_model(model):
    greedy = decoding.greedy(model, SOURCES, max_length=8)
    beam = decoding.beam_search(model, SOURCES, beam_width=1, alpha=0.0, max_length=8)
    assert beam["text"] == greedy["text"]
    np.testing.assert_array_equal(beam["token_ids"], greedy["token_ids"])
    np.testing.assert_array_equal(beam["log_prob"], greedy["log_prob"])


def test_decoding_stops_at_the_end_token_or_max_length(model):
    out = decoding.greedy(model, SOURCES, max_length=8)
    for text, ids, source in zip(out["text"], out["token_ids"], SOURCES):
        tokens = _tokens(ids)
        assert text == model.decode_ids(tokens) and len(tokens) <= 8 and set(text) <= set("0123456789")
        model_ids = model.prepare_batch([source], [text])
        if len(tokens) < 8:  # it ended: the model's next choice after the text is the end token
            logits = model((model_ids[0], model_ids[1]))[0, -1].numpy()
            logits[[model.PAD_ID, model.START_ID]] = -np.inf
            assert int(np.argmax(logits)) == model.END_ID


@pytest.mark.slow
def test_exported_signatures_match_in_process_decoding_exactly(model, loaded):
    assert set(loaded.signatures) == {"serving_default", "greedy", "sample", "beam_search"}
    _assert_same(
        loaded.signatures["greedy"](**_rows(max_length=(9, tf.int32))),
        decoding.greedy(model, SOURCES, max_length=9),
    )
    _assert_same(
        loaded.signatures["beam_search"](**_rows(max_length=(9, tf.int32), beam_width=(3, tf.int32),
                                                 alpha=(0.6, tf.float32))),
        decoding.beam_search(model, SOURCES, beam_width=3, alpha=0.6, max_length=9),
    )
    _assert_same(
        loaded.signatures["sample"](**_rows(max_length=(9, tf.int32), temperature=(1.5, tf.float32),
                                            top_k=(4, tf.int32), seed=(11, tf.int64))),
        decoding.sample(model, SOURCES, temperature=1.5, top_k=4, seed=11, max_length=9),
    )
    sources, target_in, _, _ = model.prepare_batch(SOURCES, ["357", "7", "", "100"])
    logits = loaded.signatures["serving_default"](source_ids=tf.constant(sources), target_ids=tf.constant(target_in))
    np.testing.assert_allclose(logits["logits"], model((sources, target_in)), atol=1e-5)


@pytest.mark.slow
def test_each_row_decodes_as_if_alone(loaded):
    beam = loaded.signatures["beam_search"]
    widths, alphas, lengths = [1, 4, 2, 3], [0.0, 0.6, 1.0, 0.2], [5, 9, 3, 7]
    together = beam(**_rows(max_length=(lengths, tf.int32), beam_width=(widths, tf.int32),
                            alpha=(alphas, tf.float32)))
    for row, source in enumerate(SOURCES):
        alone = beam(source=tf.constant([source]), max_length=tf.constant([lengths[row]]),
                     beam_width=tf.constant([widths[row]]), alpha=tf.constant([alphas[row]]))
        assert together["text"].numpy()[row] == alone["text"].numpy()[0]
        np.testing.assert_allclose(together["score"].numpy()[row], alone["score"].numpy()[0], rtol=1e-6)


def test_sampling_is_deterministic_for_a_seed(model):
    first = decoding.sample(model, SOURCES, temperature=2.0, seed=3, max_length=10)
    assert first["text"] == decoding.sample(model, SOURCES, temperature=2.0, seed=3, max_length=10)["text"]
    others = {tuple(decoding.sample(model, SOURCES, temperature=2.0, seed=s, max_length=10)["text"]) for s in range(4)}
    assert len(others) > 1  # the seed matters


def test_temperature_zero_and_top_k_one_are_greedy(model):
    greedy = decoding.greedy(model, SOURCES, max_length=8)["text"]
    assert decoding.sample(model, SOURCES, temperature=0.0, seed=4, max_length=8)["text"] == greedy
    assert decoding.sample(model, SOURCES, temperature=3.0, top_k=1, seed=4, max_length=8)["text"] == greedy


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m: decoding.beam_search(m, ["1"], beam_width=0),
            "`beam_width` must be an integer >= 1. Received: beam_width=0",
        ),
        (lambda m: decoding.beam_search(m, ["1"], beam_width=2.5), "Received: beam_width=2.5"),
        (
            lambda m: decoding.beam_search(m, ["1"], alpha=-0.1),
            "`alpha` must be a finite number >= 0.*Received: alpha=-0.1",
        ),
        (lambda m: decoding.beam_search(m, ["1"], alpha=float("nan")), "Received: alpha=nan"),
        (
            lambda m: decoding.greedy(m, ["1"], max_length=-1),
            "`max_length` must be an integer >= 0. Received: max_length=-1",
        ),
        (lambda m: decoding.sample(m, ["1"], temperature=-1.0), "`temperature` must be .*Received: temperature=-1.0"),
        (lambda m: decoding.sample(m, ["1"], top_k=-2), "`top_k` must be an integer >= 0.*Received: top_k=-2"),
    ],
)
def test_bad_decoding_arguments_name_the_argument(model, call, message):
    with pytest.raises(ValueError, match=message):
        call(model)


def test_one_string_instead_of_a_list_is_a_type_error(model):
    with pytest.raises(TypeError, match="`sources` must be a list of strings"):
        decoding.greedy(model, "12+3")


@pytest.mark.slow
@pytest.mark.parametrize(
    "signature, override, message",
    [
        ("beam_search", {"beam_width": ([0], tf.int32)}, r"`beam_width` must be an integer >= 1\. "
            r"Received: beam_width=\] \[0\]"),
        ("beam_search", {"alpha": ([-1.0], tf.float32)}, r"`alpha` must be a finite number >= 0 .*alpha=\] \[-1\]"),
        ("greedy", {"max_length": ([-1], tf.int32)}, r"`max_length` must be an integer >= 0\. "
            r"Received: max_length=\] \[-1\]"),
        ("sample", {"top_k": ([-1], tf.int32)}, r"`top_k` must be an integer >= 0 \(0 keeps every token\)"),
        ("sample", {"temperature": ([np.inf], tf.float32)}, r"`temperature` must be a finite number >= 0 .*\[inf\]"),
        ("greedy", {"source": (["1x"], tf.string)}, "outside the source vocabulary"),
    ],
)
def test_bad_signature_inputs_raise_invalid_argument(loaded, signature, override, message):
    defaults = {
        "source": (["1"], tf.string), "max_length": ([3], tf.int32), "beam_width": ([2], tf.int32),
        "alpha": ([0.5], tf.float32), "temperature": ([1.0], tf.float32), "top_k": ([0], tf.int32),
        "seed": ([0], tf.int64),
    }
    function = loaded.signatures[signature]
    names = function.structured_input_signature[1].keys()
    inputs = {name: tf.constant(*{**defaults, **override}[name]) for name in names}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        function(**inputs)


@pytest.mark.slow
def test_every_signature_has_a_warmup_request_that_runs(loaded, version_dir):
    from serving.warmup import read_warmup_requests

    requests = read_warmup_requests(version_dir)
    assert sorted(name for name, _ in requests) == sorted(loaded.signatures)
    for name, inputs in requests:
        loaded.signatures[name](**{key: tf.constant(value) for key, value in inputs.items()})


@pytest.mark.slow
def test_exported_graph_holds_only_ops_stock_tf_serving_runs_on_a_cpu(version_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    nodes = list(graph.node) + [node for function in graph.library.function for node in function.node_def]
    ops = {node.op for node in nodes}
    assert {"While", "StatelessWhile"} & ops  # the decoding loops are graph loops
    assert not {op for op in ops if "PyFunc" in op or "Xla" in op or "Cudnn" in op}
    assert not [node.name for node in nodes if node.attr["_XlaMustCompile"].b]


@pytest.mark.slow
def test_the_model_server_serves_beam_search_text_in_text_out(model, version_dir):
    import requests

    from serving.server import ModelServer

    body = {
        "signature_name": "beam_search",
        "inputs": {"source": SOURCES, "max_length": [9] * 4, "beam_width": [3] * 4, "alpha": [0.6] * 4},
    }
    with ModelServer("seq2seq", str(version_dir.parent), file_system_poll_wait_seconds=0) as server:
        reply = requests.post(server.rest_target + "/v1/models/seq2seq:predict", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    expected = decoding.beam_search(model, SOURCES, beam_width=3, alpha=0.6, max_length=9)
    assert reply.json()["outputs"]["text"] == expected["text"]
