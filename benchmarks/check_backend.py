"""The zoo's layers on the JAX and PyTorch backends, checked against TensorFlow.

    python -m benchmarks.check_backend                  # jax and torch → results/check_backend_cpu.json
    python -m benchmarks.check_backend --backends jax   # one of them
    KERAS_BACKEND=jax python -m benchmarks.check_backend --builtins   # zoo vs Keras built-ins on this backend
                                                                      # alone (check_backend_jax_gpu.json)

Keras fixes its backend when it is imported, so every other backend runs in a
process of its own. This process (TensorFlow) saves one small functional
model per case around a zoo layer as `.keras`, with its inputs (a right-padded
batch and its mask) and fixed cotangents, and computes its own figures. A
worker per backend (`--worker BACKEND DIR OTHERS...`, all at once) loads each
file; computes the outputs, returned states and output masks, and the
gradient of Σ outputs·cotangents with respect to the weights and the inputs
by its own autodiff; saves the model again as `.keras`; fits a small stacked
model saved here; runs a closed-loop ESN forecast; compares the zoo's Elman,
LSTM and GRU with Keras's built-ins on its own backend; tries the
TensorFlow-only features, which must refuse with a message naming the
backend; loads the shipped `char_lstm` and streams from its SavedModel; and
last loads the other workers' files. Everything goes into `DIR/<backend>.npz`;
this process loads every backend's files too, and `compare` sums it up.
`tests/test_backends.py` runs the same `run_contract` and asserts on it.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version

import numpy as np

import zoo.layers  # noqa: F401  (registers the layers, so that `.keras` files load)

B, T, I = 3, 7, 4  # batch, steps, input width of every case
LENGTHS = (7, 4, 1)  # right padding: the mask keeps each row's first LENGTHS[b] steps
BACKENDS = ("jax", "torch")
FIT_EPOCHS = 4
STREAMS_ON = "torch"  # the worker that also streams from a SavedModel (off JAX's longer critical path)
CASES = ("bidirectional", "bidirectional_sum", "decoder", "echo_state", "elman", "elman_relu", "encoder", "exprnn",
         "gru", "gru_reset_before", "peephole_lstm", "ridge_readout")  # the models of `_case_models`
ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# --- cases: built and saved on TensorFlow, loaded everywhere --------------------------------------


def _sequences():
    import keras

    return keras.Input((None, I), name="x"), keras.Input((None,), dtype="bool", name="mask")


def _case_models():
    """name -> (functional model, the layer under test). Every recurrent case returns its states."""
    import keras

    from zoo.layers import (
        GRU,
        Bidirectional,
        EchoState,
        Elman,
        ExpRNN,
        PeepholeLSTM,
        RecurrentDecoder,
        RecurrentEncoder,
        RidgeReadout,
    )

    seq = {"return_sequences": True, "return_state": True}
    layers = {
        "elman": Elman(6, learn_initial_state=True, **seq),
        "elman_relu": Elman(6, activation="relu", **seq),
        "peephole_lstm": PeepholeLSTM(6, **seq),
        "gru": GRU(6, **seq),
        "gru_reset_before": GRU(6, reset_after=False, **seq),
        "exprnn": ExpRNN(6, **seq),
        "echo_state": EchoState(6, seed=1, rc_connectivity=0.5, input_connectivity=0.5, dtype="float32", **seq),
        "bidirectional": Bidirectional(PeepholeLSTM(5, **seq)),
        "bidirectional_sum": Bidirectional(GRU(5, **seq), merge_mode="sum"),
        "encoder": RecurrentEncoder("gru", 6, bidirectional=True, return_sequences=True),
    }
    models = {}
    for name, layer in layers.items():
        x, mask = _sequences()
        models[name] = (keras.Model([x, mask], layer(x, mask=mask)), layer)
    x, mask = _sequences()
    state = keras.Input((6,), name="state")
    decoder = RecurrentDecoder("peephole_lstm", 6, vocab_size=9, return_state=True)
    models["decoder"] = (keras.Model([x, mask, state], decoder(x, initial_state=[state, state], mask=mask)), decoder)
    states = keras.Input((6,), name="states")
    readout = RidgeReadout(2, ridge=1e-3, dtype="float32")
    models["ridge_readout"] = (keras.Model(states, readout(states)), readout)
    return models


def _case_data(name, model, rng):
    """The inputs of case `name` and the indices of those differentiated."""
    if name == "ridge_readout":
        return [rng.normal(size=(B, 6)).astype("float32")], [0]
    x = rng.normal(size=(B, T, I)).astype("float32")
    mask = np.arange(T)[None, :] < np.array(LENGTHS)[:, None]
    inputs = [x, mask] + [rng.normal(size=(B, 6)).astype("float32")] * (len(model.inputs) - 2)
    return inputs, [i for i in range(len(inputs)) if i != 1]


def _fit_model():
    """Every trainable family in one stack, regressing a masked running sum."""
    import keras

    from zoo.layers import GRU, Bidirectional, Elman, PeepholeLSTM

    x = keras.Input((T, I))
    h = Bidirectional(GRU(8, return_sequences=True))(x)
    h = PeepholeLSTM(8, return_sequences=True)(h)
    h = Elman(8)(h)
    return keras.Model(x, keras.layers.Dense(1)(h))


def _fit_data(rng):
    x = rng.normal(size=(64, T, I)).astype("float32")
    return x, (x[:, :, :1].sum(axis=1) / np.sqrt(T)).astype("float32")


def prepare(directory, seed=0):
    """Saves every case (and the fit model) as TensorFlow `.keras` files with their inputs.

    Returns:
        case -> TensorFlow's {"outputs", "d_weights", "d_inputs", "masks"}.
    """
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    reference = {}
    for name, (model, layer) in _case_models().items():
        inputs, wrt = _case_data(name, model, rng)
        if name == "ridge_readout":  # fitted in closed form, then an ordinary layer
            layer.fit(rng.normal(size=(2, 20, 6)), rng.normal(size=(2, 20, 2)))
        else:  # nonzero everywhere, so no weight escapes the comparison
            for weight in model.trainable_weights:
                weight.assign(rng.normal(scale=0.5, size=weight.shape).astype("float32"))
        cotangents = [rng.normal(size=o.shape).astype("float32") for o in _call(model, inputs)]
        np.savez(directory / f"{name}.inputs.npz", *inputs, wrt=np.array(wrt), n=len(inputs),
                 **{f"cotangent_{i}": c for i, c in enumerate(cotangents)})
        model.save(directory / f"{name}.tensorflow.keras")
        outputs, d_weights, d_inputs = outputs_and_gradients(model, inputs, wrt, cotangents)
        reference[name] = {"outputs": outputs, "d_weights": d_weights, "d_inputs": d_inputs,
                           "masks": output_masks(layer, inputs), "layer": type(layer).__name__}
    x, y = _fit_data(rng)
    np.savez(directory / "fit.inputs.npz", x=x, y=y)
    _fit_model().save(directory / "fit.tensorflow.keras")
    return reference


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _call(model, inputs):
    """The model's outputs as a list; a one-input model takes its input bare."""
    return _as_list(model(inputs if len(inputs) > 1 else inputs[0]))


def _load_inputs(directory, name):
    data = np.load(directory / f"{name}.inputs.npz")
    inputs = [data[f"arr_{i}"] for i in range(int(data["n"]))]
    cotangents = [data[k] for k in sorted(k for k in data.files if k.startswith("cotangent_"))]
    return inputs, [int(i) for i in data["wrt"]], cotangents


# --- per-backend math ------------------------------------------------------------------------------


def outputs_and_gradients(model, inputs, wrt, cotangents):
    """(outputs, d/d weights, d/d inputs[wrt]) of L = Σ outputs·cotangents by the backend's own autodiff."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss(trainable, differentiated):
            full = list(inputs)
            for i, x in zip(wrt, differentiated):
                full[i] = x
            outputs, _ = model.stateless_call(trainable, non_trainable, full if len(full) > 1 else full[0])
            outputs = _as_list(outputs)
            return sum(jnp.sum(o * c) for o, c in zip(outputs, cotangents)), outputs

        step = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
        (d_weights, d_inputs), outputs = step([v.value for v in model.trainable_variables], [inputs[i] for i in wrt])
    elif backend == "torch":
        import torch

        full = [torch.tensor(x) for x in inputs]
        for i in wrt:
            full[i].requires_grad_(True)
        outputs = _call(model, full)
        sum((o * torch.tensor(c)).sum() for o, c in zip(outputs, cotangents)).backward()
        d_weights = [v.value.grad for v in model.trainable_variables]
        d_inputs = [full[i].grad for i in wrt]
        outputs = [o.detach() for o in outputs]
    else:
        import tensorflow as tf

        full = [tf.constant(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch([full[i] for i in wrt])
            outputs = _call(model, full)
            loss = sum(tf.reduce_sum(o * c) for o, c in zip(outputs, cotangents))
        d_weights, d_inputs = tape.gradient(loss, (model.trainable_variables, [full[i] for i in wrt]))
    as_numpy = keras.ops.convert_to_numpy
    return [as_numpy(o) for o in outputs], [as_numpy(g) for g in d_weights], [as_numpy(g) for g in d_inputs]


def output_masks(layer, inputs):
    """The layer's output masks for the case's mask (None entries dropped)."""
    import keras

    if len(inputs) < 2:
        return []
    masks = _as_list(layer.compute_mask(inputs[0], mask=keras.ops.convert_to_tensor(inputs[1])))
    return [keras.ops.convert_to_numpy(m) for m in masks if m is not None]


def builtin_difference(name, batch=4, steps=9, width=6, units=8, seed=0):
    """max |zoo − Keras built-in| on the current backend, same weights, with a mask."""
    import keras

    from zoo.layers import RECURRENT_LAYERS

    zoo_args, builtin = {
        "peephole_lstm": ({"use_peepholes": False}, keras.layers.LSTM),
        "gru": ({}, keras.layers.GRU),
        "elman": ({}, keras.layers.SimpleRNN),
    }[name]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, width)).astype("float32")
    mask = np.arange(steps)[None, :] < rng.integers(1, steps + 1, size=batch)[:, None]
    ours = RECURRENT_LAYERS[name](units, return_sequences=True, return_state=True, **zoo_args)
    theirs = builtin(units, return_sequences=True, return_state=True)
    ours.build(x.shape)
    theirs.build(x.shape)
    for w in ours.weights:
        w.assign(rng.normal(scale=0.5, size=w.shape).astype("float32"))
    theirs.set_weights(ours.get_weights())
    return max(
        float(np.abs(keras.ops.convert_to_numpy(a) - keras.ops.convert_to_numpy(b)).max())
        for a, b in zip(ours(x, mask=mask), theirs(x, mask=mask))
    )


def forecast_predictions(steps=10):
    """A closed-loop ESN forecast of a sine, fitted on this backend: reservoir drawn from a seed in NumPy."""
    import keras

    from zoo.layers import EchoState, RidgeReadout
    from zoo.layers.esn import forecast

    wave = np.sin(np.arange(120) * 0.3)[None, :, None].astype("float32")  # (1, 120, 1)
    reservoir = EchoState(30, seed=5, spectral_radius=0.9, leak_rate=0.7, return_sequences=True,
                          return_state=True, dtype="float32")
    states, x = reservoir(wave[:, :-1])
    readout = RidgeReadout(ridge=1e-6, warmup=10, dtype="float32").fit(keras.ops.convert_to_numpy(states),
                                                                      wave[:, 1:])
    predictions, _ = forecast(reservoir, readout, wave[:, :0], steps, [x])
    return keras.ops.convert_to_numpy(predictions)


def shipped_model(name="char_lstm", prompt="ROMEO."):
    """The logits of the shipped `.keras` model for `prompt`."""
    import keras

    import zoo

    model = zoo.get(name, weights="default")
    logits, _ = model(np.array([model.encode(prompt)], dtype="int32"))
    return keras.ops.convert_to_numpy(logits)


def shipped_stream(name="char_lstm", prompt="ROMEO.", steps=24):
    """Text streamed from the shipped SavedModel's `generate` through `zoo.sampling.stream_from`: TensorFlow
    graphs whatever Keras's backend, so one worker tries it."""

    import tensorflow as tf

    from zoo import sampling
    from zoo._registry import artifact_dir

    versions = sorted((p for p in artifact_dir(name).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    generate = tf.saved_model.load(str(versions[-1])).signatures["generate"]
    width = generate.structured_input_signature[1]["state"].shape[-1]
    return np.array("".join(sampling.stream_from(generate, width, prompt, steps, 0.8, 0, 7, chunk_size=8)))


def fit_losses(directory):
    import keras

    model = keras.saving.load_model(directory / "fit.tensorflow.keras")
    # Compiled here, not saved compiled: TensorFlow's jit_compile="auto" resolves to False on a CPU and a saved
    # compile config would carry that False to JAX, which would then train op by op, minutes instead of seconds.
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    data = np.load(directory / "fit.inputs.npz")
    history = model.fit(data["x"], data["y"], batch_size=32, epochs=FIT_EPOCHS, shuffle=False, verbose=0)
    return np.array(history.history["loss"])


def refusals():
    """What each TensorFlow-only feature says on this backend: feature -> message (None: it did not refuse)."""
    import zoo
    from training.loop import Trainer
    from training.recipes import recipe_for
    from zoo import decoding, sampling
    from zoo.export import export_saved_model
    from zoo.layers import EchoState, RidgeReadout

    char = zoo.get("char_gru", units=8, embedding_dim=4, num_layers=1)
    seq2seq = zoo.get("seq2seq_addition", units=8)
    attempts = {
        "zoo.sampling.sample": lambda: sampling.sample(char, "To", 5, seed=1),
        "zoo.sampling.stream": lambda: next(sampling.stream(char, "To", 5, seed=1)),
        "zoo.decoding.greedy": lambda: decoding.greedy(seq2seq, ["1+2"]),
        "zoo.decoding.beam_search": lambda: decoding.beam_search(seq2seq, ["1+2"]),
        "zoo.export.export_saved_model": lambda: export_saved_model(char, tempfile.mkdtemp()),
        "training.loop.Trainer": lambda: Trainer(recipe_for("adding_elman", steps=1)),
        "EchoState float64": lambda: EchoState(4, seed=0)(np.zeros((1, 2, 1))),
        "RidgeReadout float64": lambda: RidgeReadout(1)(np.zeros((1, 3))),
    }
    said = {}
    for feature, attempt in attempts.items():
        try:
            attempt()
            said[feature] = None
        except Exception as error:  # recorded whatever it is: the parent asserts the type and words
            said[feature] = f"{type(error).__name__}: {error}"
    return said


def _wait_for(directory, other, timeout=900):
    """Blocks until the `other` worker has saved its files; raises if it failed instead."""
    deadline = time.time() + timeout
    while not (directory / f"{other}.saved").exists():
        if (directory / f"{other}.failed").exists() or time.time() > deadline:
            raise RuntimeError(f"The {other} worker saved no files to load.")
        time.sleep(0.2)


def worker(backend, directory, others):
    """One backend's half of the contract; writes `directory/<backend>.npz`.

    The case files are saved on this backend first (`<backend>.saved` marks them done), the files of
    the `others` workers, running at the same time, are loaded last.
    """
    import keras

    if keras.backend.backend() != backend:
        raise ValueError(f"Run the worker with KERAS_BACKEND={backend}. Received: {keras.backend.backend()!r}")
    out, began = {}, time.process_time()

    def lap(what):
        out[f"cpu_seconds/{what}"] = np.array(time.process_time() - began)

    for name in CASES:
        inputs, wrt, cotangents = _load_inputs(directory, name)
        model = keras.saving.load_model(directory / f"{name}.tensorflow.keras")
        outputs, d_weights, d_inputs = outputs_and_gradients(model, inputs, wrt, cotangents)
        for kind, values in (("outputs", outputs), ("d_weights", d_weights), ("d_inputs", d_inputs),
                             ("masks", output_masks(model.layers[-1], inputs))):
            out.update({f"{name}/{kind}/{i}": v for i, v in enumerate(values)})
        model.save(directory / f"{name}.{backend}.keras")
        lap(name)
    (directory / f"{backend}.saved").touch()
    out["fit/loss"] = fit_losses(directory)
    lap("fit")
    out["forecast"] = forecast_predictions()
    for name in ("elman", "peephole_lstm", "gru"):
        out[f"builtin/{name}"] = np.array(builtin_difference(name))
    out["refusals"] = np.array(json.dumps(refusals()))
    lap("forecast, built-ins, refusals")
    out["shipped/logits"] = shipped_model()
    if backend == STREAMS_ON:
        out["shipped/text"] = shipped_stream()
    lap("shipped")
    for other in others:
        _wait_for(directory, other)
        for name in CASES:
            inputs, _, _ = _load_inputs(directory, name)
            outputs = _call(keras.saving.load_model(directory / f"{name}.{other}.keras"), inputs)
            out.update({f"{name}/from_{other}/{i}": keras.ops.convert_to_numpy(o) for i, o in enumerate(outputs)})
        lap(f"loading {other}")
    np.savez(directory / f"{backend}.npz", **out)


# --- the parent: TensorFlow ------------------------------------------------------------------------


def _start_worker(backend, directory, others):
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    if backend == "jax":  # LLVM's cheapest level: compiles take half the time, on float32 math that is exact anyway
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
    command = [sys.executable, "-m", "benchmarks.check_backend", "--worker", backend, str(directory), *others]
    log = open(directory / f"{backend}.log", "w")  # closed by `run_contract`
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), log


def run_contract(directory, backends=BACKENDS):
    """Saves the cases, runs every backend's worker at once, and TensorFlow's side of the comparisons.

    Returns:
        dict: "tensorflow" -> TensorFlow's figures, case -> {"outputs", "d_weights", "d_inputs", "masks"}
        plus "forecast", "fit/loss", "shipped/*"; each backend -> its worker's npz as a dict;
        "tensorflow_from" -> TensorFlow's outputs of each backend's files ("<case>/<backend>" -> list);
        "seconds" -> wall time of the workers.
    """
    import keras

    directory = pathlib.Path(directory)
    began = time.time()
    reference = prepare(directory)
    running = {b: _start_worker(b, directory, [o for o in backends if o != b]) for b in backends}
    started = time.time()
    reference["forecast"] = forecast_predictions()  # TensorFlow's own work while the workers run
    reference["fit/loss"] = fit_losses(directory)
    reference["shipped/logits"], reference["shipped/text"] = shipped_model(), shipped_stream()
    for backend, (process, log) in running.items():
        code = process.wait()
        log.close()
        if code:
            (directory / f"{backend}.failed").touch()
            for other, (rest, _) in running.items():
                if other != backend:
                    rest.wait()
            raise RuntimeError(f"The {backend} worker failed:\n{(directory / f'{backend}.log').read_text()[-8000:]}")
    seconds = {"prepare": started - began, "workers": time.time() - started}
    results = {"tensorflow": reference, "seconds": seconds, "tensorflow_from": {}}
    for backend in backends:
        results[backend] = dict(np.load(directory / f"{backend}.npz"))
        for name in CASES:
            inputs, _, _ = _load_inputs(directory, name)
            outputs = _call(keras.saving.load_model(directory / f"{name}.{backend}.keras"), inputs)
            results["tensorflow_from"][f"{name}/{backend}"] = [keras.ops.convert_to_numpy(o) for o in outputs]
    seconds["total"] = time.time() - began
    return results


def _max_difference(ours, theirs):
    if len(ours) != len(theirs):
        raise ValueError(f"Expected {len(theirs)} arrays, received {len(ours)}.")
    differences = (float(np.abs(np.asarray(a, np.float64) - b).max()) for a, b in zip(ours, theirs) if b.size)
    return max(differences, default=0.0)


def entries(results, backend, case, kind):
    """The arrays `<case>/<kind>/<i>` of one backend's results, in order."""
    found = results[backend]
    return [found[f"{case}/{kind}/{i}"] for i in range(sum(k.startswith(f"{case}/{kind}/") for k in found))]


def case_layers(results):
    """The zoo layer classes the cases cover, by name."""
    return {results["tensorflow"][case]["layer"] for case in CASES}


def refusals_of(results, backend):
    """feature -> what it raised on `backend` ("Type: message"), None where it ran."""
    return json.loads(str(results[backend]["refusals"]))


def compare(results, backends=BACKENDS):
    """Max |difference| against TensorFlow per backend, case and quantity; plus fit, forecast, built-ins."""
    reference = results["tensorflow"]
    cases = CASES
    summary = {}
    for backend in backends:
        rows = {}
        for case in cases:
            rows[case] = {kind: _max_difference(entries(results, backend, case, kind), reference[case][kind])
                          for kind in ("outputs", "d_weights", "d_inputs")}
            loaded = {f"from_{o}": _max_difference(entries(results, backend, case, f"from_{o}"),
                                                   reference[case]["outputs"])
                      for o in backends if o != backend}
            loaded["tensorflow_loads_it"] = _max_difference(results["tensorflow_from"][f"{case}/{backend}"],
                                                            reference[case]["outputs"])
            rows[case].update(loaded)
            rows[case]["masks_equal"] = all(
                np.array_equal(a, b) for a, b in zip(entries(results, backend, case, "masks"), reference[case]["masks"])
            )
        found = results[backend]
        summary[backend] = {
            "cases": rows,
            "max_abs_difference": max(v for row in rows.values() for v in row.values() if not isinstance(v, bool)),
            "forecast_max_abs_difference": float(np.abs(found["forecast"] - reference["forecast"]).max()),
            "shipped_char_lstm_logits_max_abs_difference": float(
                np.abs(found["shipped/logits"] - reference["shipped/logits"]).max()
            ),
            **({"shipped_char_lstm_stream_equal": str(found["shipped/text"]) == str(reference["shipped/text"])}
               if "shipped/text" in found else {}),
            "fit_loss": [float(v) for v in found["fit/loss"]],
            "builtin_max_abs_difference": {
                k.split("/")[1]: float(v) for k, v in found.items() if k.startswith("builtin/")
            },
            "refusals": refusals_of(results, backend),
            "worker_cpu_seconds": {k: float(v) for k, v in found.items() if k.startswith("cpu_seconds")},
        }
    summary["tensorflow_fit_loss"] = [float(v) for v in reference["fit/loss"]]
    summary["wall_seconds"] = results["seconds"]
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--out", default=str(RESULTS / "check_backend_cpu.json"))
    parser.add_argument("--builtins", action="store_true", help="zoo vs Keras built-ins on this process's backend")
    parser.add_argument("--worker", nargs="+", metavar="BACKEND DIR [OTHER ...]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        backend, directory, *others = args.worker
        try:
            worker(backend, pathlib.Path(directory), others)
        except BaseException:
            (pathlib.Path(directory) / f"{backend}.failed").touch()  # the other workers stop waiting
            raise
        return 0
    import keras

    from benchmarks.machine import describe_machine

    if args.builtins:
        if keras.backend.backend() == "jax":
            import jax

            # GPUs default to TF32 matmuls (10-bit mantissa): compare the math, not that rounding.
            jax.config.update("jax_default_matmul_precision", "highest")
        results = {name: builtin_difference(name) for name in ("peephole_lstm", "gru", "elman")}
        print(json.dumps({"machine": describe_machine(), "max_abs_difference": results}, indent=2))
        return 0 if all(v < 1e-4 for v in results.values()) else 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as directory:
        summary = compare(run_contract(directory, tuple(args.backends)), tuple(args.backends))
    # Other processes' load stretches the seconds (not the differences): recorded beside them.
    machine = {**describe_machine(), **{name: version(name) for name in ("tensorflow", "jax", "torch")},
               "load_average_1min": [load_before, os.getloadavg()[0]]}
    text = json.dumps({"machine": machine, **summary}, indent=2)
    pathlib.Path(args.out).write_text(text + "\n")
    print(text)
    # The tests hold every value to rtol = atol = 1e-5; this summary keeps only the absolute maximum, which for
    # ExpRNN's weight gradient (large values through a float32 matrix exponential) reaches 2.3e-5 on PyTorch.
    return 0 if all(summary[b]["max_abs_difference"] < 1e-4 for b in args.backends) else 1


if __name__ == "__main__":
    sys.exit(main())
