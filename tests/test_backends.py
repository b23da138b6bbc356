"""Every zoo layer on Keras's JAX and PyTorch backends (CPU), against TensorFlow with the same weights.

Keras fixes its backend at import, so `benchmarks.check_backend.run_contract`
runs each backend in a worker process of its own and this module (on
TensorFlow) compares: outputs and returned states, gradients by each backend's
own autodiff, output masks, `.keras` files saved on each backend loaded on the
others, `fit` lowering the loss, a closed-loop ESN forecast, the zoo against
Keras's built-ins on each backend, and the TensorFlow-only features refusing
with a message that names the backend. Once for the whole module, the workers
run side by side: 52 CPU-seconds for JAX (mostly XLA compiles) and 23 for
PyTorch after their imports (`worker_cpu_seconds` in
`benchmarks/results/check_backend_cpu.json`).
"""

import re

import numpy as np
import pytest

from benchmarks import check_backend
from benchmarks.check_backend import BACKENDS, CASES, entries

pytestmark = pytest.mark.slow

ATOL = RTOL = 1e-5  # float32 throughout
TENSORFLOW_ONLY = (
    "zoo.sampling.sample",
    "zoo.sampling.stream",
    "zoo.decoding.greedy",
    "zoo.decoding.beam_search",
    "zoo.export.export_saved_model",
    "training.loop.Trainer",
)


@pytest.fixture(scope="module")
def contract(tmp_path_factory):
    return check_backend.run_contract(tmp_path_factory.mktemp("backends"))


def _assert_close(ours, reference, what):
    assert len(ours) == len(reference) > 0, what
    for i, (a, b) in enumerate(zip(ours, reference)):
        assert a.shape == b.shape, f"{what} [{i}]"
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{what} [{i}]")


def test_every_zoo_layer_has_a_case(contract):
    import keras

    import zoo.layers

    exported = [getattr(zoo.layers, name) for name in zoo.layers.__all__]
    layers = {c.__name__ for c in exported if isinstance(c, type) and issubclass(c, keras.layers.Layer)}
    cells = {name for name in layers if name.endswith("Cell")}  # run inside their layers
    assert layers - cells - {"RecurrentLayer"} == set(check_backend.case_layers(contract))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_outputs_and_states_equal_tensorflow(contract, backend, case):
    _assert_close(entries(contract, backend, case, "outputs"), contract["tensorflow"][case]["outputs"],
                  f"{case} on {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_gradients_equal_tensorflow(contract, backend, case):
    reference = contract["tensorflow"][case]
    if reference["d_weights"]:  # the reservoir and the readout have no trainable weight
        _assert_close(entries(contract, backend, case, "d_weights"), reference["d_weights"], f"{case} d/dW")
    _assert_close(entries(contract, backend, case, "d_inputs"), reference["d_inputs"], f"{case} d/dx")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", [case for case in CASES if case != "ridge_readout"])
def test_output_masks_equal_tensorflow(contract, backend, case):
    reference = contract["tensorflow"][case]["masks"]
    ours = entries(contract, backend, case, "masks")
    assert len(ours) == len(reference) > 0
    for a, b in zip(ours, reference):
        np.testing.assert_array_equal(a, b)
    lengths = np.array(check_backend.LENGTHS)
    np.testing.assert_array_equal(reference[0], np.arange(check_backend.T)[None, :] < lengths[:, None])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_keras_files_load_across_backends(contract, backend, case):
    reference = contract["tensorflow"][case]["outputs"]
    for other in BACKENDS:
        if other != backend:
            _assert_close(entries(contract, backend, case, f"from_{other}"), reference, f"{other} file on {backend}")
    _assert_close(contract["tensorflow_from"][f"{case}/{backend}"], reference, f"{backend} file on tensorflow")


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_lowers_the_loss(contract, backend):
    losses = contract[backend]["fit/loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    # Same starting weights, data and batch order as TensorFlow: the first epoch agrees closely.
    np.testing.assert_allclose(losses[0], contract["tensorflow"]["fit/loss"][0], rtol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_closed_loop_forecast_equals_tensorflow(contract, backend):
    ours, reference = contract[backend]["forecast"], contract["tensorflow"]["forecast"]
    assert ours.shape == reference.shape == (1, 10, 1)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)  # fitted in float64 from float32 states
    # Prediction k is of the wave k + 1 steps after the last input fitted on (step 118).
    assert np.abs(reference[0, :, 0] - np.sin((np.arange(10) + 119) * 0.3)).max() < 0.05


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", ["elman", "peephole_lstm", "gru"])
def test_zoo_equals_keras_builtin_on_each_backend(contract, backend, family):
    assert float(contract[backend][f"builtin/{family}"]) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("feature", TENSORFLOW_ONLY)
def test_tensorflow_only_features_refuse_naming_the_backend(contract, backend, feature):
    said = check_backend.refusals_of(contract, backend)[feature]
    assert said is not None, f"{feature} ran on {backend}"
    assert re.match(rf"ValueError: `[\w.]+` needs the TensorFlow backend: .* Received: the {backend} backend", said)


@pytest.mark.parametrize("layer", ["EchoState", "RidgeReadout"])
def test_float64_layers_refuse_jax_without_x64_and_run_on_torch(contract, layer):
    jax_said = check_backend.refusals_of(contract, "jax")[f"{layer} float64"]
    assert re.match(rf"ValueError: {layer} computes in float64 .* Received: dtype='float64' on the jax back", jax_said)
    assert check_backend.refusals_of(contract, "torch")[f"{layer} float64"] is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_shipped_model_loads_with_equal_logits(contract, backend):
    np.testing.assert_allclose(contract[backend]["shipped/logits"], contract["tensorflow"]["shipped/logits"],
                               rtol=RTOL, atol=ATOL)


def test_shipped_saved_model_streams_off_tensorflow(contract):
    text = str(contract[check_backend.STREAMS_ON]["shipped/text"])
    assert len(text) == 24 and text == str(contract["tensorflow"]["shipped/text"])
