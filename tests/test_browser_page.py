"""The model browser's page in headless Chromium (Debian's `chromium` and `chromium-driver`, driven by selenium):
the list shows every served model, a card's figures load, and text streamed through TF Serving's REST API grows
piece by piece into exactly what the Python client streams for the same settings.

`make test` apt-installs Chromium when it is missing and the user is root; without it these tests are skipped,
for that reason only, and say so. Anything else missing (selenium is in the dev extra) fails them."""

import json
import pathlib
import shutil
import time

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from serving.client import Client
from serving.model_browser import read_card
from serving.repository import ModelConfig
from serving.server import ModelServer
from tests.serving_models import add_version

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SHIPPED = pathlib.Path(__file__).resolve().parents[1] / "saved_models"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="Chromium is not installed: the browser tests need Debian's chromium and chromium-driver "
        f"(found chromium={CHROMIUM}, chromedriver={CHROMEDRIVER}); `make test` installs them when run as root",
    ),
]

WAIT_S = 60  # generous: the 2-core CI machine is often shared


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_versions):
    """The shipped `char_lstm` (it streams), and the tiny test model under the shipped `elman_grammar`'s card and
    its two figures: a model whose `generate` (it echoes `steps` and `temperature`) has no state to stream with.
    Loading the real `elman_grammar` would only cost time."""
    grammar = tmp_path_factory.mktemp("browser_page") / "grammar_card"
    grammar.mkdir()
    add_version(grammar, tiny_versions, 2)
    card = json.loads((SHIPPED / "elman_grammar" / "card.json").read_text())
    (grammar / "card.json").write_text(json.dumps(card))
    for file_name in card["figures"].values():
        shutil.copy(SHIPPED / "elman_grammar" / file_name, grammar / file_name)
    models = [ModelConfig("char_lstm", str(SHIPPED / "char_lstm")), ModelConfig("grammar_card", str(grammar))]
    with ModelServer(
        model_config=models, port=0, rest_api_port=0, file_system_poll_wait_seconds=0, model_browser=True
    ) as running:
        yield running


@pytest.fixture(scope="module")
def page(server):
    """Chromium showing the browser page, once every model's section is built."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # No sandbox: CI runs as root, where Chromium refuses to start with one. /dev/shm is small in containers.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.get(server.browser_url)
        WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script("return document.body.dataset.ready"))
        yield driver
    finally:
        driver.quit()


def _section(driver, name):
    return driver.find_element(By.CSS_SELECTOR, f'section.model[data-model="{name}"]')


def test_the_list_shows_every_served_model_with_its_card(server, page):
    served = [config.name for config in server.repository.models()]
    listed = [item.get_attribute("data-model") for item in page.find_elements(By.CSS_SELECTOR, "#model-list li")]
    assert listed == served == ["char_lstm", "grammar_card"]
    assert "2 models served by" in page.find_element(By.ID, "summary").text
    grammar = _section(page, "grammar_card")
    assert "meets its bar" in grammar.find_element(By.CSS_SELECTOR, ".verdict").text
    metrics = grammar.find_element(By.CSS_SELECTOR, ".metrics").text
    assert "mean_cosine" in metrics and ">= 0.916" in metrics
    assert "python -m training train elman_grammar" in grammar.find_element(By.CSS_SELECTOR, ".recipe").text


def test_the_card_figures_load(page):
    def loaded_widths(name):
        return page.execute_script(
            "return Array.from(arguments[0].querySelectorAll('.figures img'), i => i.complete ? i.naturalWidth : 0)",
            _section(page, name),
        )

    for name, count in [("grammar_card", len(read_card(SHIPPED / "elman_grammar")["figures"])),
                        ("char_lstm", len(read_card(SHIPPED / "char_lstm")["figures"]))]:
        WebDriverWait(page, WAIT_S).until(lambda d, name=name: all(loaded_widths(name)))
        widths = loaded_widths(name)
        assert len(widths) == count and all(width > 0 for width in widths), (name, widths)


def test_streamed_text_grows_piece_by_piece_into_what_the_python_client_streams(server, page):
    settings = {"prompt": "JULIET.", "tokens": 160, "temperature": 0.7, "top_k": 5, "seed": 3, "chunk_size": 8}
    box = WebDriverWait(page, WAIT_S).until(
        lambda d: _section(d, "char_lstm").find_elements(By.CSS_SELECTOR, "form.generate")
    )[0]
    assert not _section(page, "grammar_card").find_elements(By.CSS_SELECTOR, "form.generate")
    page.execute_script(
        "for (const [name, value] of Object.entries(arguments[1])) arguments[0].elements[name].value = value;",
        box,
        settings,
    )
    called, predict = [], server.dataplane.predict
    server.dataplane.predict = lambda servable, name, *rest: called.append(name) or predict(servable, name, *rest)
    try:
        box.find_element(By.NAME, "start").click()
        lengths, deadline = [], time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            state, length = page.execute_script(
                "return [arguments[0].dataset.state, arguments[0].querySelector('.generated').textContent.length]", box
            )
            lengths.append(length)
            if state != "streaming":
                break
    finally:
        del server.dataplane.predict
    assert called == ["generate_bytes"] * 20  # the state as base64, passed back untouched
    assert state == "done", box.find_element(By.CSS_SELECTOR, ".stream-status").text
    text = page.execute_script("return arguments[0].querySelector('.generated').textContent", box)
    partial = sorted(set(lengths) - {0, len(text)})
    assert lengths == sorted(lengths), "the output only ever grows"
    assert len(partial) >= 3, f"the polls saw the text at only these partial lengths: {partial}"
    assert box.find_element(By.CSS_SELECTOR, ".output").get_attribute("data-pieces") == "20"  # 160 / 8 calls
    with Client(server.rest_target) as client:
        expected = "".join(client.stream("char_lstm", "JULIET.", 160, 0.7, 5, 3, chunk_size=8))
    assert len(text) == 160 and text == expected
