"""The exported ESN's closed-loop `forecast` signature, served by the embedded server over REST."""

import numpy as np
import pytest
import requests

from serving.warmup import read_warmup_requests
from training.data.mackey_glass import mackey_glass
from zoo.export import export_saved_model
from zoo.models.esn_forecaster import ESNForecaster


@pytest.fixture(scope="module")
def fitted_and_served(tmp_path_factory):
    from serving.repository import ModelConfig
    from serving.server import ModelServer

    series = mackey_glass(400)
    model = ESNForecaster(units=30, warmup=20, seed=0)
    model.fit_readout(series[None, :-1], series[None, 1:])
    version_dir = export_saved_model(model, tmp_path_factory.mktemp("models") / "esn")
    with ModelServer(model_config=[ModelConfig("esn", str(version_dir.parent))],
                     file_system_poll_wait_seconds=0) as server:
        yield model, series, version_dir, server.rest_target


def _forecast(rest_url, inputs, steps):
    body = {"signature_name": "forecast", "inputs": {"inputs": inputs.tolist(), "steps": steps}}
    return requests.post(f"{rest_url}/v1/models/esn:predict", json=body, timeout=60)


@pytest.mark.slow
def test_served_forecast_is_the_closed_loop_with_a_horizon_per_row(fitted_and_served):
    model, series, version_dir, rest_url = fitted_and_served
    warmups = np.stack([series[100:150], series[200:250]])  # (2, 50, 1)
    reply = _forecast(rest_url, warmups, [3, 6])
    assert reply.status_code == 200, reply.text
    served = np.array(reply.json()["outputs"], dtype=np.float64)  # NaN (JSON NaN) past a row's horizon
    assert served.shape == (2, 6, 1)
    expected = np.asarray(model.forecast(warmups, 6)[0])  # both rows from the zero state, as the signature
    np.testing.assert_allclose(served[1], expected[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(served[0, :3], expected[0, :3], rtol=1e-10, atol=1e-12)
    assert np.isnan(served[0, 3:]).all()
    assert np.abs(served[1] - series[250:256]).max() < 0.1  # and it follows the series (30 units, 50 warm-up steps)
    assert [name for name, _ in read_warmup_requests(version_dir)] == ["serving_default", "forecast"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "steps, message",
    [
        ([2, 0], "`steps` must be integers in [1, 4096] (one horizon per row). Received: steps="),  # the graph's check
        ([ESNForecaster.MAX_FORECAST_STEPS + 1], "`steps` must be an integer between 0 and 4096"),  # the server's
    ],
)
def test_served_forecast_rejects_a_horizon_out_of_range(fitted_and_served, steps, message):
    _, series, _, rest_url = fitted_and_served
    reply = _forecast(rest_url, np.stack([series[:10]] * len(steps)), steps)
    assert reply.status_code == 400
    assert message in reply.json()["error"]
