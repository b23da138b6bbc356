"""CharLM, in-process sampling and the SavedModel export: one path, same numbers."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from serving import servable
from serving.servable import read_signature_defs
from tests.reference import matmuls_in, randomize_weights
from zoo import sampling
from zoo.export import export_saved_model, loaded_forms, next_version, read_zoo_metadata, stale_reasons
from zoo.layers import _loop

VOCAB = "\n abcdefghij"
INIT_OP = "__saved_model_init_op"  # what `tf.saved_model.save` adds to the signature map for the loader


@pytest.fixture(scope="module")
def model():
    model = zoo.get("char_lstm", vocabulary=VOCAB, units=12, embedding_dim=6)
    model(np.zeros((1, 1), np.int32))
    return randomize_weights(model, np.random.default_rng(0), scale=0.4)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "char_lstm"
    return tf.saved_model.load(str(export_saved_model(model, base))), base


def _generate_inputs(model, prompts, steps, temperature=1.0, top_k=0, seed=7, position=0):
    batch = len(prompts)
    return dict(
        prompt=tf.constant(prompts),
        state=tf.zeros((batch, sum(model.state_sizes))),
        steps=tf.constant(steps if isinstance(steps, list) else [steps] * batch, tf.int32),
        temperature=tf.constant([temperature] * batch, tf.float32),
        top_k=tf.constant([top_k] * batch, tf.int32),
        seed=tf.constant([seed] * batch, tf.int64),
        position=tf.constant([position] * batch, tf.int64),
    )


def test_states_pack_and_unpack(model):
    states = [[tf.fill((2, 12), float(3 * i + j)) for j in range(2)] for i in range(2)]
    packed = model.pack_states(states)
    assert packed.shape == (2, 48)
    for layer, again in zip(states, model.unpack_states(packed)):
        for a, b in zip(layer, again):
            np.testing.assert_array_equal(a, b)


def test_carrying_state_equals_one_long_call(model):
    ids = np.random.default_rng(1).integers(0, len(VOCAB), size=(2, 9)).astype(np.int32)
    full, _ = model(ids)
    first, states = model(ids[:, :4])
    second, _ = model(ids[:, 4:], states=states)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, atol=1e-5)


@pytest.mark.parametrize("name", ["char_lstm", "char_gru", "char_elman"])
def test_one_step_gives_the_numbers_of_a_one_step_call_bit_for_bit(name):
    # Sampling feeds characters through `step`; the served text of a seed must not depend on that path.
    lm = zoo.get(name, vocabulary=VOCAB, units=12, embedding_dim=6)
    lm(np.zeros((1, 1), np.int32))
    lm = randomize_weights(lm, np.random.default_rng(4), scale=0.6)
    rng = np.random.default_rng(5)
    ids = rng.integers(0, len(VOCAB), size=5).astype(np.int32)
    states = lm.unpack_states(tf.constant(rng.normal(size=(5, sum(lm.state_sizes))), tf.float32))
    keep = np.array([True, False, True, True, False])
    logits, stepped = lm.step(tf.constant(ids), states, keep=tf.constant(keep))
    call_logits, called = lm(ids[:, None], states=states, step_mask=keep[:, None])
    np.testing.assert_array_equal(logits.numpy()[keep], call_logits.numpy()[keep, 0])
    flat = lambda nested: np.concatenate([np.asarray(s) for layer in nested for s in layer], axis=-1)  # noqa: E731
    np.testing.assert_array_equal(flat(stepped), flat(called))
    np.testing.assert_array_equal(flat(stepped)[~keep], flat(states)[~keep])  # a row not kept is untouched


@pytest.mark.parametrize("name", ["char_lstm", "char_gru", "char_elman"])
def test_products_by_column_blocks_give_the_numbers_of_whole_kernels(name, monkeypatch):
    # Samplers multiply by blocks of each kernel's columns (`zoo.layers._loop.column_blocks`), for speed only.
    # Blocks a multiple of 16 columns wide, as the default's are: a block of another width (5, say) can take
    # another path through the CPU's matmul kernel, whose rounding differs in the last bit.
    lm = zoo.get(name, vocabulary=VOCAB, units=32, embedding_dim=6)
    lm(np.zeros((1, 1), np.int32))
    lm = randomize_weights(lm, np.random.default_rng(6), scale=0.3)
    signature = sampling.generate_signature(sum(lm.state_sizes))
    batches = [_generate_inputs(lm, ["abc", "j", "ghij"], 40, temperature=0.9, seed=3),  # the lean loop
               {**_generate_inputs(lm, ["abc", "j", "ghij"], [40, 7, 0], seed=3),  # the full rule
                "temperature": tf.constant([0.9, 0.0, 1.2]), "top_k": tf.constant([0, 0, 4])}]
    answers, products = [], []
    for elements in (32 * 16, 10**9):  # kernels 32 to 128 columns wide: in blocks of 16 to 80 columns, or whole
        monkeypatch.setattr(_loop, "STEP_BLOCK_ELEMENTS", elements)
        generate = tf.function(sampling.make_generate_fn(lm), input_signature=signature, autograph=False)
        products.append(matmuls_in(generate.get_concrete_function()))
        answers.append([generate(**inputs) for inputs in batches])
    assert products[0] > products[1]  # the blocks are in the graph
    for blocked, whole in zip(*answers):
        for key in ("text", "token_ids", "state"):
            np.testing.assert_array_equal(blocked[key].numpy(), whole[key].numpy())


def test_the_in_process_sampler_takes_whole_kernels_on_one_thread(monkeypatch):
    # There the column blocks only cost (`zoo.layers._loop.runs_on_one_thread`); the text must not change.
    lm = zoo.get("char_gru", vocabulary=VOCAB, units=32, embedding_dim=6)
    lm(np.zeros((1, 1), np.int32))
    lm = randomize_weights(lm, np.random.default_rng(9), scale=0.3)
    monkeypatch.setattr(_loop, "STEP_BLOCK_ELEMENTS", 32 * 16)  # recurrent kernels in blocks of 16 columns
    texts, products = [], []
    for one_thread in (False, True):
        monkeypatch.setattr(sampling, "runs_on_one_thread", lambda one_thread=one_thread: one_thread)
        monkeypatch.setattr(sampling, "_COMPILED", {})
        products.append(matmuls_in(sampling._compiled_generate(lm).get_concrete_function()))
        texts.append(list(sampling.stream(lm, "abc", 40, temperature=0.9, seed=3, chunk_size=16)))
    assert products[0] > products[1]  # the blocks' products, then the whole kernels'
    assert texts[0] == texts[1] and len("".join(texts[0])) == 40


@pytest.mark.slow
@pytest.mark.parametrize("name", ["char_lstm", "char_gru"])
def test_an_export_stores_cut_kernels_as_their_blocks_and_answers_as_whole_kernels(name, tmp_path, monkeypatch,
                                                                                     caplog):
    # A sampler that cut its kernels at every call copied them each time (`zoo.layers._loop.StoredColumnBlocks`).
    from zoo.export import _saved_model

    lm = zoo.get(name, vocabulary=VOCAB, units=32, embedding_dim=6)
    lm(np.zeros((1, 1), np.int32))
    lm = randomize_weights(lm, np.random.default_rng(8), scale=0.3)
    monkeypatch.setattr(_loop, "STEP_BLOCK_ELEMENTS", 32 * 16)  # recurrent kernels in blocks of 16 columns
    stored = export_saved_model(lm, tmp_path / "stored")
    with monkeypatch.context() as patch:  # the sampler as exported before: blocks cut from whole kernels per call
        patch.setattr(_saved_model, "StoredColumnBlocks", lambda model: _loop.StoredColumnBlocks(keras.Sequential()))
        cut_per_call = export_saved_model(lm, tmp_path / "cut")

    shapes = [shape for _, shape in tf.train.list_variables(str(stored / "variables" / "variables"))]
    recurrent_kernel = list(lm.recurrent[0].cell.recurrent_kernel.shape)
    assert recurrent_kernel not in shapes and [32, 16] in shapes  # the blocks, not the whole kernel
    assert stale_reasons(stored) == []
    assert stale_reasons(cut_per_call) == ["a sampler that cuts its kernels into column blocks at every call"]
    loaded = tf.saved_model.load(str(stored))
    signatures = [loaded.signatures, tf.saved_model.load(str(cut_per_call)).signatures]
    # Each signature's whole-kernel form, which a server on one thread runs, is beside it and not a signature.
    forms = loaded_forms(loaded)
    assert sorted(forms) == sorted(loaded.signatures) == sorted(set(read_signature_defs(str(stored))) - {INIT_OP})
    assert loaded_forms(tf.saved_model.load(str(cut_per_call))) == {}  # no blocks, nothing to join
    inputs = {**_generate_inputs(lm, ["abc", "j", "ghij"], [30, 7, 0], seed=3),
              "temperature": tf.constant([0.9, 0.0, 1.2]), "top_k": tf.constant([0, 0, 4])}
    calls = {"generate": inputs, "serving_default": {"token_ids": tf.constant([[1, 2, 3, 4], [5, 6, 7, 8]])},
             "sample": {key: value for key, value in inputs.items() if key not in ("state", "position")},
             "generate_bytes": {**{key: value for key, value in inputs.items() if key != "state"},
                                "state_bytes": tf.constant([row.astype("<f4").tobytes() for row in
                                                            inputs["state"].numpy()])}}
    for signature, feeds in calls.items():
        answers = [served[signature](**feeds) for served in signatures] + [forms[signature](**feeds)]
        for key in answers[0]:
            for other in answers[1:]:
                np.testing.assert_array_equal(answers[0][key].numpy(), other[key].numpy())
    if name == "char_lstm":  # the server's choice is the same for every model: loads are slow, once is enough
        _one_thread_server_runs_the_forms(stored, signatures[0], inputs, monkeypatch, caplog)
    # Stock TF Serving loads a version into a TF1 session (restore, then the signature's tensors): same answers.
    in_session = _run_in_session(stored, "generate", {key: value.numpy() for key, value in inputs.items()})
    for key, value in signatures[0]["generate"](**inputs).items():
        np.testing.assert_array_equal(in_session[key], value.numpy())


def _failing(**inputs):
    raise tf.errors.InternalError(None, None, "the form broke")


def _one_thread_server_runs_the_forms(version_dir, signatures, inputs, monkeypatch, caplog):
    """On one thread the embedded server runs the whole-kernel forms, once they answer its warmup requests
    as the signatures do; on a CPU where they did not, the signatures."""
    monkeypatch.setattr(servable, "runs_on_one_thread", lambda: True)
    with caplog.at_level("INFO", logger="serving.servable"):
        one_thread = servable.Servable.load("lm", 1, str(version_dir))
    assert one_thread.whole_kernel_signatures == tuple(sorted(signatures))
    assert "Serving lm version 1 through the whole-kernel forms of generate, generate_bytes, sample" in caplog.text
    caplog.clear()
    expected = signatures["generate"](**inputs)
    for key, value in one_thread.run("generate", {key: value.numpy() for key, value in inputs.items()}).items():
        np.testing.assert_array_equal(value, expected[key].numpy())
    # The load's last step, from the same loaded version (a load takes seconds): forms that differ, or fail.
    on_signatures = servable.Servable("lm", 1, str(version_dir), one_thread.signature_defs, dict(signatures),
                                      one_thread._loaded)
    # A bad request gets the signature's error from the form, word for word.
    nan_state = {key: value.numpy() for key, value in inputs.items()}
    nan_state["state"][1, 0] = np.nan
    errors = []
    for served in (on_signatures, one_thread):
        with pytest.raises(servable.ServingError) as error:
            served.run("generate", nan_state)
        errors.append((error.value.code, error.value.message))
    assert errors[0] == errors[1] and "`state` must be finite numbers" in errors[0][1]
    with monkeypatch.context() as patch, caplog.at_level("WARNING", logger="serving.servable"):
        patch.setattr(servable, "differing_output", lambda expected, got: "text")
        assert on_signatures._with_forms(loaded_forms(one_thread._loaded)) is on_signatures
    assert "Serving lm version 1 through its signatures" in caplog.text
    assert "its output 'text' differs from the signature's" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="serving.servable"):
        assert on_signatures._with_forms({name: _failing for name in signatures}) is on_signatures
    assert "it fails where the signature runs: the form broke" in caplog.text


def _run_in_session(version_dir, signature, feeds):
    """`signature` of the SavedModel in `version_dir` run as TF Serving runs it: loaded into a TF1 session."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        signature_def = meta_graph.signature_def[signature]
        fetches = {alias: info.name for alias, info in signature_def.outputs.items()}
        return session.run(fetches, {signature_def.inputs[alias].name: value for alias, value in feeds.items()})


def test_same_seed_same_text_different_seed_different_text(model):
    a = sampling.sample(model, "abc", 60, seed=5)
    assert a == sampling.sample(model, "abc", 60, seed=5)
    assert a != sampling.sample(model, "abc", 60, seed=6)
    assert len(a) == 60 and set(a) <= set(VOCAB)


def test_a_batch_draws_the_tokens_stateless_categorical_draws_row_by_row():
    # The sampler draws a batch at once from Philox numbers it computes itself; a seed must keep meaning what
    # `tf.random.stateless_categorical` (the op versions before drew with, a row at a time) makes of it.
    rng = np.random.default_rng(4)
    batch, vocab = 64, 84
    for _ in range(6):
        logits = (rng.normal(size=(batch, vocab)) * rng.uniform(0.5, 4.0)).astype(np.float32)
        temperature = rng.choice([0.0, 0.3, 0.8, 1.0, 1.7], size=batch).astype(np.float32)
        top_k = rng.choice([0, 1, 3, 10, vocab, 200], size=batch).astype(np.int32)
        seed = rng.integers(-(2**62), 2**62, size=batch)
        position = rng.integers(0, 2**40, size=batch)
        uniforms = sampling.stateless_uniforms(seed, position)
        drawn = sampling.pick_tokens(tf.constant(logits), temperature, top_k, uniforms).numpy()
        kth_best = -np.sort(-logits, axis=1)[np.arange(batch), np.where(top_k > 0, np.minimum(top_k, vocab), vocab) - 1]
        kept = np.where(logits < kth_best[:, None], -np.inf, logits).astype(np.float32)
        expected = [
            int(tf.random.stateless_categorical((kept[b] / temperature[b])[None], 1, seed=[seed[b], position[b]])[0, 0])
            if temperature[b] > 0 else int(np.argmax(kept[b]))
            for b in range(batch)
        ]
        np.testing.assert_array_equal(drawn, expected)


def test_the_cheaper_picks_draw_what_the_full_rule_draws_where_they_apply():
    rng = np.random.default_rng(5)
    batch, vocab = 256, 84
    logits = tf.constant((rng.normal(size=(batch, vocab)) * 3).astype(np.float32))
    temperature = rng.choice([0.3, 0.8, 1.0, 1.7], size=batch).astype(np.float32)
    keeps_all = rng.choice([0, vocab, 200], size=batch).astype(np.int32)
    uniforms = sampling.stateless_uniforms(rng.integers(0, 2**40, size=batch), np.arange(batch))
    full = sampling.pick_tokens(logits, temperature, keeps_all, uniforms).numpy()
    for filter_top_k, greedy_rows in [(False, True), (True, False), (False, False)]:
        cheaper = sampling.pick_tokens(logits, temperature, keeps_all, uniforms, filter_top_k, greedy_rows)
        np.testing.assert_array_equal(cheaper, full)


def test_a_chunk_of_uniforms_is_every_position_drawn_alone():
    seed = tf.constant([3, -9], tf.int64)
    ahead = sampling.stateless_uniforms(seed[:, None], tf.range(5, dtype=tf.int64))
    alone = [[sampling.stateless_uniforms(seed[b], tf.constant(p, tf.int64)) for p in range(5)] for b in range(2)]
    np.testing.assert_array_equal(ahead, np.array(alone))
    assert ahead.dtype == tf.float64 and 0.0 <= np.min(ahead) and np.max(ahead) < 1.0


@pytest.mark.parametrize(
    "mate, plan",
    [({"top_k": 3}, (True, True, True)), ({"temperature": 0.0}, (True, True, True)),
     ({"steps": 5}, (True, True, True)), ({"top_k": len(VOCAB)}, (False, False, False))],
)
def test_every_sampling_plan_gives_a_row_the_same_numbers(model, mate, plan):
    # Each call runs the cheapest loop its batch allows (`sampling_plan`); a row must not see which one it got.
    # (top_k = len(VOCAB) keeps every character: the lean loop still applies.)
    # Both batches have two rows: the kernels' numbers may depend on the batch size, never on the other rows.
    generate = sampling._compiled_generate(model)
    row = dict(prompt="abc", steps=60, temperature=0.9, top_k=0, seed=5, position=3)
    plain_mate = {**row, "prompt": "j", "seed": 8}
    outputs = []
    for rows in ([row, plain_mate], [row, {**plain_mate, **mate}]):
        inputs = {name: tf.constant([r[name] for r in rows], dtype) for name, dtype in
                  [("prompt", tf.string), ("steps", tf.int32), ("temperature", tf.float32), ("top_k", tf.int32),
                   ("seed", tf.int64), ("position", tf.int64)]}
        inputs["state"] = tf.zeros((2, sum(model.state_sizes)))
        chosen = sampling.sampling_plan(inputs["temperature"], inputs["top_k"], inputs["steps"], len(VOCAB))
        outputs.append((sampling.SAMPLING_PLANS[int(chosen)], generate(**inputs)))
    (cheapest, alone), (chosen, together) = outputs
    assert cheapest == (False, False, False) and chosen == plan
    assert together["text"].numpy()[0] == alone["text"].numpy()[0]
    np.testing.assert_array_equal(together["token_ids"].numpy()[0, :60], alone["token_ids"].numpy()[0, :60])
    np.testing.assert_array_equal(together["state"].numpy()[0], alone["state"].numpy()[0])


@pytest.mark.parametrize("chunk_size", [1, 7, 32])
def test_chunked_stream_equals_one_call(model, chunk_size):
    whole = sampling.sample(model, "abc", 50, seed=11, top_k=4)
    assert "".join(sampling.stream(model, "abc", 50, seed=11, top_k=4, chunk_size=chunk_size)) == whole


def test_temperature_zero_is_argmax(model):
    text = sampling.sample(model, "a", 10, temperature=0.0)
    ids = model.encode("a")
    logits, states = model(np.array([ids], np.int32))
    expected = ""
    for _ in range(10):
        token = int(np.argmax(logits[0, -1]))
        expected += VOCAB[token]
        logits, states = model(np.array([[token]], np.int32), states=states)
    assert text == expected


def test_top_k_one_is_argmax_whatever_the_temperature(model):
    assert sampling.sample(model, "a", 20, temperature=2.0, top_k=1, seed=3) == sampling.sample(
        model, "a", 20, temperature=0.0
    )


@pytest.mark.slow
def test_zero_steps_returns_the_prompt_state_and_no_text(exported, model):
    loaded, _ = exported
    out = loaded.signatures["generate"](**_generate_inputs(model, ["abc", "b"], 0))
    assert list(out["text"].numpy()) == [b"", b""] and out["token_ids"].shape == (2, 0)
    _, states = model(np.array([model.encode("abc")], np.int32))
    np.testing.assert_allclose(out["state"].numpy()[0], model.pack_states(states)[0], atol=1e-5)


@pytest.mark.slow
def test_batch_rows_are_independent_of_each_other(exported, model):
    loaded, _ = exported
    generate = loaded.signatures["generate"]
    together = generate(**_generate_inputs(model, ["abc", "j"], [12, 5]))
    alone = generate(**_generate_inputs(model, ["j"], 5))
    assert together["text"].numpy()[1] == alone["text"].numpy()[0]
    assert list(together["token_ids"].numpy()[1, 5:]) == [-1] * 7
    np.testing.assert_allclose(together["state"].numpy()[1], alone["state"].numpy()[0], atol=1e-6)


@pytest.mark.slow
def test_exported_signatures_match_the_keras_model(exported, model):
    loaded, _ = exported
    ids = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.int32)
    logits = loaded.signatures["serving_default"](token_ids=tf.constant(ids))["logits"]
    np.testing.assert_allclose(logits, model(ids)[0], atol=1e-5)
    out = loaded.signatures["generate"](**_generate_inputs(model, ["abc"], 40, seed=9, top_k=3))
    assert out["text"].numpy()[0].decode() == sampling.sample(model, "abc", 40, seed=9, top_k=3)


@pytest.mark.slow
def test_sample_signature_is_generate_from_a_zero_state(exported, model):
    loaded, _ = exported
    inputs = _generate_inputs(model, ["abc", ""], [40, 7], temperature=0.9, top_k=3, seed=9)
    del inputs["state"], inputs["position"]
    text = [t.decode() for t in loaded.signatures["sample"](**inputs)["text"].numpy()]
    assert text == [sampling.sample(model, "abc", 40, 0.9, 3, seed=9), sampling.sample(model, "", 7, 0.9, 3, seed=9)]


@pytest.mark.slow
def test_a_batch_of_no_rows_gets_empty_outputs(exported, model):
    loaded, _ = exported
    width = sum(model.state_sizes)
    out = loaded.signatures["generate"](**_generate_inputs(model, tf.constant([], tf.string), []))
    assert (out["text"].shape, out["token_ids"].shape, out["state"].shape) == ((0,), (0, 0), (0, width))
    inputs = _generate_inputs(model, tf.constant([], tf.string), [])
    del inputs["state"], inputs["position"]
    assert loaded.signatures["sample"](**inputs)["text"].shape == (0,)


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, message",
    [
        (
            {"prompt": tf.constant(["abc", "xyz"])},
            r"`prompt` must hold only characters of the vocabulary of the model \(12 characters\)\. "
            r"Received: prompt=\] \[xyz\]",
        ),
        ({"steps": tf.constant([-1], tf.int32)}, r"`steps` must be an integer >= 0\. Received: steps=\] \[-1\]"),
        ({"temperature": tf.constant([np.nan], tf.float32)}, r"`temperature` must be a finite number >= 0 .*\[nan\]"),
        ({"top_k": tf.constant([-2], tf.int32)}, r"`top_k` must be an integer >= 0 \(0 keeps every token\)"),
    ],
)
def test_bad_generate_inputs_raise_invalid_argument(exported, model, override, message):
    loaded, _ = exported
    inputs = {**_generate_inputs(model, ["abc"], 3), **override}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["generate"](**inputs)


def _as_bytes_rows(state):
    return tf.constant([row.astype("<f4").tobytes() for row in np.asarray(state)], tf.string)


@pytest.mark.slow
def test_generate_bytes_is_generate_with_each_rows_state_as_its_little_endian_bytes(exported, model):
    # REST clients send the state as base64 (TF Serving's only binary JSON form) instead of 4 S JSON numbers.
    loaded, base = exported
    rng = np.random.default_rng(3)
    state = np.tanh(rng.normal(size=(3, sum(model.state_sizes)))).astype(np.float32)
    state[0, :3] = [-0.0, 1e-45, -3e38]  # a signed zero, a subnormal, a huge number: every bit travels
    inputs = {**_generate_inputs(model, ["abc", "j", "ghij"], [9, 4, 0], temperature=0.8, position=5),
              "state": tf.constant(state)}
    numbers = loaded.signatures["generate"](**inputs)
    as_bytes = {**{k: v for k, v in inputs.items() if k != "state"}, "state_bytes": _as_bytes_rows(state)}
    packed = loaded.signatures["generate_bytes"](**as_bytes)
    assert sorted(packed) == ["state_bytes", "text", "token_ids"]
    np.testing.assert_array_equal(packed["text"], numbers["text"])
    np.testing.assert_array_equal(packed["token_ids"], numbers["token_ids"])
    assert list(packed["state_bytes"].numpy()) == list(_as_bytes_rows(numbers["state"]).numpy())
    # As stock TF Serving runs it: loaded into a TF1 session.
    in_session = _run_in_session(base / "1", "generate_bytes", {k: v.numpy() for k, v in as_bytes.items()})
    assert list(in_session["state_bytes"]) == list(packed["state_bytes"].numpy())
    no_rows = {**_generate_inputs(model, tf.constant([], tf.string), []), "state_bytes": tf.constant([], tf.string)}
    del no_rows["state"]
    assert loaded.signatures["generate_bytes"](**no_rows)["state_bytes"].shape == (0,)


@pytest.mark.slow
def test_generate_bytes_refuses_a_state_of_the_wrong_length_naming_it(exported, model):
    loaded, _ = exported
    width = sum(model.state_sizes)
    inputs = _generate_inputs(model, ["abc", "j"], 3)
    del inputs["state"]
    state_bytes = tf.constant([b"\0" * 4 * width, b"\0" * 10], tf.string)
    message = rf"`state_bytes` must hold {4 * width} bytes per row \({width} little-endian float32, .*\] \[10\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["generate_bytes"](**inputs, state_bytes=state_bytes)


@pytest.mark.slow
def test_a_state_with_nan_or_infinity_is_refused_naming_its_rows(exported, model):
    # Unchecked, it made the sampler draw an id past the vocabulary: "indices[0] = 12 is not in [0, 12)".
    loaded, _ = exported
    state = np.zeros((3, sum(model.state_sizes)), np.float32)
    state[1, 5], state[2, 0] = np.nan, -np.inf
    inputs = {**_generate_inputs(model, ["abc", "j", "a"], 3), "state": tf.constant(state)}
    message = r"`state` must be finite numbers, as `generate` returns them\. Received: NaN or infinity in rows \] \[1 2"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["generate"](**inputs)
    del inputs["state"]
    swapped = _as_bytes_rows(np.full((3, sum(model.state_sizes)), 2.0, np.float32).byteswap())  # read as 4.6e-41
    nan_bytes = tf.constant([b"\xff" * 4 * sum(model.state_sizes)] + list(swapped.numpy()[1:]), tf.string)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`state_bytes` must be finite numbers.*\] \[0\]"):
        loaded.signatures["generate_bytes"](**inputs, state_bytes=nan_bytes)


@pytest.mark.slow
def test_export_is_self_describing_and_versions_increase(exported, model):
    _, base = exported
    assert next_version(base) == 2
    meta = read_zoo_metadata(base / "1")
    assert meta["config"]["vocabulary"] == VOCAB
    assert meta["signatures"] == ["generate", "generate_bytes", "sample", "serving_default"]
    second = export_saved_model(model, base)
    assert second.name == "2" and not [p for p in base.iterdir() if p.name.startswith(".")]
    with pytest.raises(FileExistsError, match="Version 2 already exists"):
        export_saved_model(model, base, version=2)


@pytest.mark.slow
def test_failed_export_leaves_no_version_visible(model, tmp_path, monkeypatch):
    def half_write(obj, export_dir, **kwargs):
        pathlib.Path(export_dir, "saved_model.pb").write_bytes(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", half_write)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(model, tmp_path / "m")
    assert list((tmp_path / "m").iterdir()) == []


@pytest.mark.slow
def test_exported_graph_has_only_ops_tf_serving_runs(exported):
    _, base = exported
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((base / "1" / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless", "CudnnRNN", "CudnnRNNV3", "XlaLaunch"}
    assert not any(f.attr["_XlaMustCompile"].b for f in graph.library.function)
    assert "serve" in saved.meta_graphs[0].meta_info_def.tags


@pytest.mark.slow
def test_variables_are_stored_once(exported, model):
    _, base = exported
    stored = [name for name, _ in tf.train.list_variables(str(base / "1" / "variables" / "variables"))]
    assert len([n for n in stored if n.endswith("VARIABLE_VALUE")]) == len(model.weights)


@pytest.mark.slow
@pytest.mark.parametrize("ids, shown", [([[1, -1]], r"\[-1\]"), ([[-85, 12, 3]], r"\[-85 12\]")])
def test_serving_default_rejects_ids_outside_the_vocabulary(exported, ids, shown):
    loaded, _ = exported
    message = r"`token_ids` must be integers in \[0, 12\) \(ids of the vocabulary of the model\)\. "
    with pytest.raises(tf.errors.InvalidArgumentError, match=message + r"Received: token_ids=\] " + shown):
        loaded.signatures["serving_default"](token_ids=tf.constant(ids, tf.int32))


@pytest.mark.slow
def test_a_long_bad_prompt_is_shown_cut_at_64_characters(exported, model):
    loaded, _ = exported
    inputs = {**_generate_inputs(model, ["a" * 100 + "z"], 3)}
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Received: prompt=\] \[a{64}\]"):
        loaded.signatures["generate"](**inputs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["char_lstm", "char_gru", "char_elman"])
def test_the_shipped_versions_answer_valid_inputs_as_the_keras_model_does(name):
    # The served versions were re-exported from the .keras weights to add the input checks above.
    shipped = zoo.get(name, weights="default")
    version = zoo.card(name)["served_version"]
    signatures = tf.saved_model.load(str(zoo._registry.artifact_dir(name) / str(version))).signatures
    ids = np.random.default_rng(3).integers(0, shipped.vocab_size, size=(2, 20)).astype(np.int32)
    logits = signatures["serving_default"](token_ids=tf.constant(ids))["logits"]
    np.testing.assert_allclose(logits, shipped(ids)[0], atol=1e-4)
    inputs = _generate_inputs(shipped, ["ROMEO."], 24, temperature=0.8, seed=5)
    del inputs["state"], inputs["position"]
    text = signatures["sample"](**inputs)["text"].numpy()[0].decode()
    assert text == sampling.sample(shipped, "ROMEO.", 24, 0.8, seed=5)


def test_dropout_acts_in_training_only_and_keeps_the_weights_of_a_model_without_it(model):
    dropped = zoo.get("char_lstm", vocabulary=VOCAB, units=12, embedding_dim=6, dropout=0.5)
    ids = np.random.default_rng(1).integers(0, len(VOCAB), (3, 9)).astype(np.int32)
    dropped(ids)
    dropped.set_weights(model.get_weights())  # same weights, one for one: dropout adds none
    inference, _ = dropped(ids, training=False)
    np.testing.assert_array_equal(inference, model(ids, training=False)[0])
    first, _ = dropped(ids, training=True)
    second, _ = dropped(ids, training=True)
    assert not np.allclose(first, inference) and not np.allclose(first, second)  # a fresh mask on every call


def test_dropout_reaches_every_layer_input_and_the_head():
    """Zaremba et al.'s placement: on the input of each recurrent layer and of the head, about half zeroed at 0.5."""
    dropped = zoo.get("char_gru", vocabulary=VOCAB, units=5, embedding_dim=4, num_layers=2, dropout=0.5)
    ids = np.zeros((2, 3), np.int32)
    dropped(ids)
    seen = []
    for layer in dropped.recurrent + [dropped.head]:
        layer.call = _recording(layer.call, seen)
    dropped(ids, training=True)
    zeroed = [float(np.mean(np.asarray(x) == 0)) for x in seen]
    assert len(zeroed) == 3 and all(fraction > 0.1 for fraction in zeroed), zeroed


def _recording(call, seen):
    def recorded(inputs, *args, **kwargs):
        seen.append(inputs)
        return call(inputs, *args, **kwargs)
    return recorded


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5"])
def test_a_dropout_outside_zero_to_one_is_refused_naming_it(rate):
    with pytest.raises(ValueError, match=rf"`dropout` must be a number in \[0, 1\)\. Received: dropout={rate!r}"):
        zoo.get("char_elman", vocabulary=VOCAB, dropout=rate)


def test_dropout_survives_saving_and_a_saved_model_without_it_loads_as_none(model, tmp_path):
    import keras

    dropped = zoo.get("char_lstm", vocabulary=VOCAB, units=12, embedding_dim=6, dropout=0.25)
    dropped(np.zeros((1, 1), np.int32))
    dropped.save(tmp_path / "dropped.keras")
    assert keras.saving.load_model(tmp_path / "dropped.keras").dropout == 0.25
    model.save(tmp_path / "plain.keras")
    assert keras.saving.load_model(tmp_path / "plain.keras").drop is None
