"""Weights outside the source tree: a built wheel carries the shipped models, and a URL with its sha256 is
fetched once into the cache, checked, and refused when it cannot be reached or does not match."""

import functools
import hashlib
import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading
import zipfile

import pytest

import zoo
from zoo import _weights

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "saved_models"


@pytest.fixture
def http_folder(tmp_path):
    """An HTTP server on 127.0.0.1 serving `tmp_path / "www"`; yields (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _hash(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_url_with_its_hash_is_fetched_once_then_read_from_the_cache(http_folder, tmp_path, monkeypatch):
    folder, base = http_folder
    monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "cache"))
    source = SHIPPED / "binary_adder" / "binary_adder.keras"
    (folder / "adder.keras").write_bytes(source.read_bytes())
    url = f"{base}/adder.keras#sha256={_hash(source)}"
    model = zoo.get("binary_adder", weights=url)
    shipped = zoo.get("binary_adder", weights="default")
    assert [w.numpy().tolist() for w in model.weights] == [w.numpy().tolist() for w in shipped.weights]
    cached = tmp_path / "cache" / "weights" / f"{_hash(source)}.keras"
    assert cached.read_bytes() == source.read_bytes()
    (folder / "adder.keras").unlink()  # the server no longer has it: the cache answers
    assert zoo.get("binary_adder", weights=url).count_params() == shipped.count_params()


def test_a_download_with_another_hash_is_discarded(http_folder, tmp_path, monkeypatch):
    folder, base = http_folder
    monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "cache"))
    (folder / "adder.keras").write_bytes(b"not the file you asked for")
    wanted = "0" * 64
    with pytest.raises(ValueError, match=rf"The weights fetched for 'binary_adder' from {base}/adder\.keras have "
                       rf"sha256 [0-9a-f]{{64}}, not the {wanted} the URL names; the download was discarded"):
        zoo.get("binary_adder", weights=f"{base}/adder.keras#sha256={wanted}")
    assert list((tmp_path / "cache" / "weights").iterdir()) == []


def test_an_unreachable_url_and_a_url_without_its_hash_are_explained(http_folder, tmp_path, monkeypatch):
    _, base = http_folder
    monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConnectionError, match=rf"Could not fetch the weights of 'binary_adder' from "
                       rf"{base}/missing\.keras: HTTP Error 404.*pass a local `\.keras` file as `weights`"):
        zoo.get("binary_adder", weights=f"{base}/missing.keras#sha256={'1' * 64}")
    with pytest.raises(ValueError, match=r"`weights` URLs must end in #sha256=<64 hex digits>.*Received: "
                       r"weights='http://127\.0\.0\.1:1/a\.keras'"):
        zoo.get("binary_adder", weights="http://127.0.0.1:1/a.keras")
    assert not (tmp_path / "cache" / "weights").exists() or not any((tmp_path / "cache" / "weights").iterdir())


def test_without_a_source_tree_the_installed_package_holds_the_shipped_models(tmp_path, monkeypatch):
    monkeypatch.delenv("RNN_ZOO_MODELS", raising=False)
    monkeypatch.setattr(_weights, "_PACKAGE", tmp_path / "site" / "zoo")  # an installed zoo: no saved_models beside
    assert _weights.models_dir() == tmp_path / "site" / "zoo" / "_shipped"
    monkeypatch.setenv("RNN_ZOO_MODELS", str(tmp_path / "mine"))
    assert _weights.models_dir() == tmp_path / "mine"


INSTALLED = """
import json, pathlib, sys
import zoo
model = zoo.get("binary_adder", weights="default")
print(json.dumps({"zoo": zoo.__file__, "models_dir": str(zoo._registry.models_dir()),
                  "pretrained": zoo.list(pretrained=True), "parameters": model.count_params(),
                  "card_metrics": zoo.card("char_lstm")["metrics"]["val_nats_per_char"]}))
"""


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_loads_the_shipped_weights(tmp_path):
    """Built here from the source tree, installed (not editable) into a folder of its own, run from another
    working directory: `zoo.get(name, weights="default")` finds the weights inside the package."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("rnn_zoo-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"zoo/_shipped/char_lstm/char_lstm.keras", "zoo/_shipped/char_lstm/card.json"} <= names
    assert {"serving/browser/index.html", "serving/browser/browser.js", "serving/browser/browser.css"} <= names
    assert not any(name.startswith("saved_models/") for name in names)
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                              str(tmp_path / "site"), str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "RNN_ZOO_MODELS"}
    env.update(PYTHONPATH=str(tmp_path / "site"), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", INSTALLED], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["zoo"].startswith(str(tmp_path / "site"))
    assert found["models_dir"] == str(tmp_path / "site" / "zoo" / "_shipped")
    assert set(found["pretrained"]) == set(zoo.list(pretrained=True))
    assert found["parameters"] == zoo.get("binary_adder", weights="default").count_params()
    assert found["card_metrics"] == zoo.card("char_lstm")["metrics"]["val_nats_per_char"]
