"""The model browser: a page on the REST port that lists the served models with their cards and samples live.

`ModelServer(model_browser=True)` (`python -m serving --model_browser`) adds these read-only routes to the
REST app, all outside TF Serving's `/v1/` (which stays exactly TF Serving's):

| path | answer |
|---|---|
| `/browser/` | the page: `serving/browser/index.html`, with `browser.js` and `browser.css` beside it |
| `/browser/api/models` | JSON `{"models": [{"name", "card", "figures": {title: address}}]}`, one per served model |
| `/browser/api/models/<name>/figures/<file>` | a PNG that the model's card lists under `figures` |

Everything else the page shows it reads through TF Serving's REST API, as any client does: each model's
versions (`GET /v1/models/<name>`), its signatures (`.../metadata`) and the text it streams, which the page's
script produces by calling the `generate` signature chunk by chunk and carrying the recurrent state itself,
as `serving.streaming.TextStream` does. The server keeps nothing per page.

A card is `<base_path>/card.json`, which `training.publish` writes beside the versions, else the card that the
newest version carries in `assets.extra/zoo.json`. A name in a URL never becomes a path by itself: only
served model names are looked up, only files that the card lists are read, and only from the model's own
base path (a link pointing out of it is refused too).
"""

import json
import pathlib
import urllib.parse

from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from serving.repository import scan_versions

__all__ = ["ModelBrowser", "PAGE_PATH", "STATIC_DIR", "read_card"]

PAGE_PATH = "/browser/"
STATIC_DIR = pathlib.Path(__file__).resolve().parent / "browser"
# The page's own files; nothing else in the folder (nor outside it) is served.
_STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "browser.js": "text/javascript; charset=utf-8",
    "browser.css": "text/css; charset=utf-8",
}
# Cards change when a model is republished; the browser asks again rather than trusting a cached copy.
_NO_CACHE = {"Cache-Control": "no-cache"}


def read_card(base_path):
    """The card of the model under `base_path`: its `card.json`, else the newest version's; {} when neither.

    A file that cannot be read or parsed is skipped: a page listing the other models beats an error page.
    """
    base = pathlib.Path(base_path)
    versions = sorted(scan_versions(base).items(), reverse=True)
    candidates = [base / "card.json", *(pathlib.Path(path) / "assets.extra" / "zoo.json" for _, path in versions)]
    for path in candidates:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        card = document.get("card") if path.name == "zoo.json" and isinstance(document, dict) else document
        if isinstance(card, dict):
            return card
    return {}


def _is_bare_png_name(name):
    """True for a plain file name ending in .png: no folder part, not hidden, nothing to climb with."""
    return (
        isinstance(name, str)
        and name == pathlib.PurePosixPath(name).name
        and "\\" not in name
        and not name.startswith(".")
        and name.lower().endswith(".png")
    )


def figure_files(card):
    """Figure title -> file name, for the figures a card lists that may be served."""
    figures = card.get("figures")
    if not isinstance(figures, dict):
        return {}
    return {str(title): name for title, name in figures.items() if _is_bare_png_name(name)}


def _not_found():
    return PlainTextResponse("Not Found", status_code=404)


class ModelBrowser:
    """The browser's routes over the models a `ModelRepository` serves (read at each request).

    Args:
        repository: the server's `serving.repository.ModelRepository`.
    """

    def __init__(self, repository):
        self.repository = repository

    def models(self):
        """[{"name", "card", "figures": {title: address}}] for each served model, by name."""
        listing = []
        for config in self.repository.models():
            card = read_card(config.base_path)
            quoted = urllib.parse.quote(config.name, safe="")
            figures = {
                title: f"{PAGE_PATH}api/models/{quoted}/figures/{urllib.parse.quote(name, safe='')}"
                for title, name in figure_files(card).items()
            }
            listing.append({"name": config.name, "card": card, "figures": figures})
        return listing

    def figure(self, name, file_name):
        """The bytes of figure `file_name` of served model `name`; None unless its card lists that file."""
        config = next((c for c in self.repository.models() if c.name == name), None)
        if config is None or file_name not in figure_files(read_card(config.base_path)).values():
            return None
        base = pathlib.Path(config.base_path).resolve()
        path = (base / file_name).resolve()
        if path.parent != base or not path.is_file():
            return None
        return path.read_bytes()

    def routes(self):
        """Starlette routes (GET and HEAD) for the page, its files and the cards. Plain functions: Starlette
        runs them in its thread pool, so reading a file never blocks the event loop."""
        return [
            Route(PAGE_PATH.rstrip("/"), lambda request: RedirectResponse(PAGE_PATH)),
            Route(PAGE_PATH, lambda request: self._static("index.html")),
            Route(f"{PAGE_PATH}api/models", self._models_endpoint),
            Route(f"{PAGE_PATH}api/models/{{name}}/figures/{{file_name}}", self._figure_endpoint),
            Route(f"{PAGE_PATH}{{file_name}}", lambda request: self._static(request.path_params["file_name"])),
        ]

    def _models_endpoint(self, request):
        return JSONResponse({"models": self.models()}, headers=_NO_CACHE)

    def _figure_endpoint(self, request):
        content = self.figure(request.path_params["name"], request.path_params["file_name"])
        if content is None:
            return _not_found()
        return Response(content, media_type="image/png", headers=_NO_CACHE)

    @staticmethod
    def _static(file_name):
        media_type = _STATIC_TYPES.get(file_name)
        if media_type is None:
            return _not_found()
        return Response((STATIC_DIR / file_name).read_bytes(), media_type=media_type, headers=_NO_CACHE)
