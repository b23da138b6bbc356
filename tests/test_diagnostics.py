"""zoo.diagnostics: eigenvalues of each recurrent matrix and Jacobian-product norms, against hand-computed cases
(a linear Elman net, whose Jacobian product is a matrix power), for stacked, gated and bidirectional models."""

import keras
import numpy as np
import pytest

from zoo import diagnostics
from zoo.models.sequence import SequenceModel


def _linear_elman(rng, units=4):
    model = SequenceModel(1, units=units, cell="elman", cell_options={"activation": "linear"})
    model(np.zeros((1, 2, 3), np.float32))
    recurrent = rng.normal(scale=0.6, size=(units, units)).astype(np.float32)
    model.recurrent[0].cell.recurrent_kernel.assign(recurrent)
    return model, recurrent


def test_linear_elman_jacobian_product_is_the_matrix_power():
    rng = np.random.default_rng(0)
    model, recurrent = _linear_elman(rng)
    inputs = rng.normal(size=(3, 30, 3)).astype(np.float32)

    (name, norms), = diagnostics.jacobian_norms(model, inputs, max_lag=8).items()

    # h(t) = h(t−1)·U + ...: a perturbation δ of h(t₀) is δ·Uᵏ after k steps, whatever the inputs.
    expected = [np.linalg.norm(np.linalg.matrix_power(recurrent.astype(np.float64), k), ord=2) for k in range(9)]
    assert name == model.recurrent[0].path
    np.testing.assert_allclose(norms, expected, rtol=1e-4)


def test_eigenvalues_are_those_of_each_recurrent_matrix_and_gate_block():
    rng = np.random.default_rng(1)
    model, recurrent = _linear_elman(rng)
    (name, values), = diagnostics.recurrent_eigenvalues(model).items()
    assert name.endswith("/U")
    np.testing.assert_allclose(np.sort_complex(values), np.sort_complex(np.linalg.eigvals(recurrent)), rtol=1e-5)

    lstm = SequenceModel(1, units=3, cell="peephole_lstm", num_layers=2)
    lstm(np.zeros((1, 2, 2), np.float32))
    eigenvalues = diagnostics.recurrent_eigenvalues(lstm)
    assert [name.rpartition("/")[2] for name in eigenvalues] == ["U_i", "U_f", "U_c", "U_o"] * 2
    kernel = lstm.recurrent[1].cell.recurrent_kernel.numpy()
    forget = [values for name, values in eigenvalues.items() if name.endswith("U_f")][1]
    np.testing.assert_allclose(np.sort_complex(forget), np.sort_complex(np.linalg.eigvals(kernel[:, 3:6])), rtol=1e-5)


@pytest.mark.slow
def test_lstm_state_includes_the_cell_and_every_layer_and_direction_is_measured():
    rng = np.random.default_rng(2)
    model = SequenceModel(2, units=5, cell="peephole_lstm", bidirectional=True, num_layers=2)
    inputs = rng.normal(size=(2, 12, 3)).astype(np.float32)
    model(inputs)

    curves = diagnostics.jacobian_norms(model, inputs, max_lag=6)

    assert len(curves) == 4  # two layers, two directions each
    for norms in curves.values():
        assert norms.shape == (7,)
        assert norms[0] == pytest.approx(1.0)  # ∂h/∂(h, c) at k = 0 holds the identity on h
        assert np.all(np.isfinite(norms)) and np.all(norms[1:] > 0)


def test_rejects_a_model_without_recurrent_layers_and_too_short_inputs():
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="only_dense")])
    with pytest.raises(ValueError, match=r"must contain a zoo recurrent layer \(zoo.layers\). Received: a model "
                                         r"with layers \[.*'only_dense'\]"):
        diagnostics.recurrent_eigenvalues(dense)
    model, _ = _linear_elman(np.random.default_rng(3))
    with pytest.raises(ValueError, match="at least 2 steps long .* Received: 1 step"):
        diagnostics.jacobian_norms(model, np.zeros((1, 1, 3), np.float32))
