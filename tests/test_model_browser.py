"""The model browser's routes over HTTP: the page's files, each served model's card, the figures a card lists,
and nothing else (no name in a URL reaches a file outside a model's folder). tests/test_browser_page.py drives
the page itself in headless Chromium."""

import http.client
import json
import os
import pathlib

import pytest
import requests

from serving.__main__ import build_parser
from serving.model_browser import STATIC_DIR, figure_files, read_card
from serving.repository import ModelConfig
from serving.server import ModelServer
from tests.serving_models import add_version

PNG = (pathlib.Path(__file__).resolve().parents[1] / "saved_models" / "elman_grammar" / "dendrogram.png").read_bytes()
SECRET = b"\x89PNG not for the browser"
CARD = {
    "metrics": {"mse": 0.25, "steps": 300},
    "bar": "<= 0.5",
    "passed": True,
    "figures": {
        "curve": "curve.png",
        "climbs": "../secret.png",
        "absolute": "/etc/secret.png",
        "backslash": "..\\secret.png",
        "hidden": ".hidden.png",
        "weights": "carded.keras",
    },
}


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_versions):
    """A server with the browser on, serving the tiny model three times:

    - "carded": a card listing one good figure and five that must never be served (each file exists);
    - "bare": no card at all;
    - "linked": a card whose figure is a link pointing out of its folder.
    """
    root = tmp_path_factory.mktemp("browsed")
    (root / "secret.png").write_bytes(SECRET)
    carded, bare, linked = root / "carded", root / "bare", root / "linked"
    for base in (carded, bare, linked):
        base.mkdir()
        add_version(base, tiny_versions, 2)
    (carded / "card.json").write_text(json.dumps(CARD))
    for name in ("curve.png", ".hidden.png", "carded.keras"):
        (carded / name).write_bytes(PNG if name == "curve.png" else SECRET)
    (linked / "card.json").write_text(json.dumps({"figures": {"curve": "link.png"}}))
    os.symlink(root / "secret.png", linked / "link.png")
    models = [ModelConfig(base.name, str(base)) for base in (carded, bare, linked)]
    with ModelServer(
        model_config=models, port=0, rest_api_port=0, file_system_poll_wait_seconds=0, model_browser=True
    ) as server:
        yield server


def _raw_get(server, path):
    """GET with the path sent byte for byte: no client-side normalisation of dot segments or escapes."""
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def test_the_page_and_its_files_are_served_under_browser(served):
    assert served.browser_url == served.rest_target + "/browser/"
    moved = requests.get(served.rest_target + "/browser", allow_redirects=False, timeout=30)
    assert moved.status_code == 307 and moved.headers["location"] == "/browser/"
    for path, name, media_type in [
        ("/browser/", "index.html", "text/html; charset=utf-8"),
        ("/browser/browser.js", "browser.js", "text/javascript; charset=utf-8"),
        ("/browser/browser.css", "browser.css", "text/css; charset=utf-8"),
    ]:
        reply = requests.get(served.rest_target + path, timeout=30)
        assert (reply.status_code, reply.headers["content-type"]) == (200, media_type)
        assert reply.content == (STATIC_DIR / name).read_bytes()


def test_the_model_list_holds_every_served_model_with_its_card_and_only_its_safe_figures(served):
    reply = requests.get(served.rest_target + "/browser/api/models", timeout=30)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    models = {entry["name"]: entry for entry in reply.json()["models"]}
    assert list(models) == ["bare", "carded", "linked"]
    assert models["carded"]["card"] == CARD
    assert models["carded"]["figures"] == {"curve": "/browser/api/models/carded/figures/curve.png"}
    assert models["bare"] == {"name": "bare", "card": {}, "figures": {}}


def test_a_figure_that_the_card_lists_is_served_as_png(served):
    reply = requests.get(served.rest_target + "/browser/api/models/carded/figures/curve.png", timeout=30)
    assert (reply.status_code, reply.headers["content-type"], reply.content) == (200, "image/png", PNG)


@pytest.mark.parametrize(
    "path",
    [
        "/browser/api/models/carded/figures/..%2Fsecret.png",
        "/browser/api/models/carded/figures/%2E%2E%2Fsecret.png",
        "/browser/api/models/carded/figures/../../secret.png",
        "/browser/api/models/carded/figures/..%5Csecret.png",
        "/browser/api/models/carded/figures/%2Fetc%2Fsecret.png",
        "/browser/api/models/carded/figures/.hidden.png",  # listed by the card, but hidden
        "/browser/api/models/carded/figures/carded.keras",  # listed by the card, but not a figure
        "/browser/api/models/carded/figures/..",
        "/browser/api/models/linked/figures/link.png",  # listed, but a link out of the folder
        "/browser/api/models/..%2Fcarded/figures/curve.png",
        "/browser/api/models/nobody/figures/curve.png",
        "/browser/..%2Fsecret.png",
        "/browser/../secret.png",
        "/browser/%2E%2E/model_browser.py",
        "/browser/__init__.py",
        "/browser/model_browser.py",
    ],
)
def test_no_path_outside_the_listed_files_is_served(served, path):
    status, body = _raw_get(served, path)
    assert status == 404, (path, body[:100])
    assert SECRET not in body and b"import" not in body


def test_the_browser_is_off_unless_asked_for(rest_url):
    """The default server's REST port answers exactly as TF Serving's: no page, no cards."""
    for path in ("/browser/", "/browser/api/models"):
        reply = requests.get(rest_url + path, timeout=30)
        assert (reply.status_code, reply.text) == (404, "Not Found")


def test_the_flag_turns_the_browser_on():
    assert build_parser().parse_args(["--model_base_path=m", "--model_browser"]).model_browser is True
    assert build_parser().parse_args(["--model_base_path=m"]).model_browser is False
    assert ModelServer("m", "m").browser_url is None


def test_a_card_comes_from_card_json_else_from_the_newest_version(tmp_path):
    for version, metric in [(1, 0.5), (3, 0.25)]:
        folder = tmp_path / str(version)
        (folder / "assets.extra").mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"")
        (folder / "assets.extra" / "zoo.json").write_text(json.dumps({"card": {"metrics": {"mse": metric}}}))
    assert read_card(tmp_path) == {"metrics": {"mse": 0.25}}
    (tmp_path / "card.json").write_text("{not json")
    assert read_card(tmp_path) == {"metrics": {"mse": 0.25}}
    (tmp_path / "card.json").write_text(json.dumps({"bar": "<= 1"}))
    assert read_card(tmp_path) == {"bar": "<= 1"}
    assert read_card(tmp_path / "missing") == {}


def test_only_bare_png_names_count_as_figures():
    assert figure_files(CARD) == {"curve": "curve.png"}
    assert figure_files({"figures": ["curve.png"]}) == {}
    assert figure_files({}) == {}
