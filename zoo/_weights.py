"""Where a model's trained weights come from: the shipped models, a local file, or a URL.

- The shipped models live in the source tree's `saved_models/`; a built wheel
  carries their `.keras` files and cards inside the package (`zoo/_shipped/`,
  written by `setup.py`), so an installed zoo has them too. `$RNN_ZOO_MODELS`
  overrides both.
- A URL is fetched once into a cache (`$RNN_ZOO_CACHE`, default
  `~/.cache/rnn-zoo`), named by its sha256, which the URL must carry the way
  pip's links do (`https://host/char_lstm.keras#sha256=<64 hex digits>`): a
  download whose hash differs is discarded, and a cached file is used without
  asking the network again.
"""

import hashlib
import os
import pathlib
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["models_dir", "cache_dir", "resolve", "sha256_of"]

_PACKAGE = pathlib.Path(__file__).resolve().parent
_HASH = re.compile(r"^[0-9a-f]{64}$")
TIMEOUT_SECONDS = 60


def models_dir():
    """`$RNN_ZOO_MODELS`, else the source tree's `saved_models/`, else the models installed with the package."""
    if os.environ.get("RNN_ZOO_MODELS"):
        return pathlib.Path(os.environ["RNN_ZOO_MODELS"])
    tree = _PACKAGE.parent / "saved_models"
    return tree if tree.is_dir() else _PACKAGE / "_shipped"


def cache_dir():
    """Where the zoo keeps what it fetches (weights, the Shakespeare corpus): `$RNN_ZOO_CACHE` or
    `~/.cache/rnn-zoo`."""
    return pathlib.Path(os.environ.get("RNN_ZOO_CACHE") or pathlib.Path.home() / ".cache" / "rnn-zoo")


def sha256_of(path):
    """The hex sha256 of the file at `path`, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name, weights):
    """The local `.keras` file that `weights` names for model `name`: "default", a path, or a URL with its hash.

    Raises:
        ValueError: no such file, a URL without a valid `#sha256=`, a download whose hash differs.
        ConnectionError: the URL cannot be reached (and nothing is cached under its hash).
    """
    if weights == "default":
        path = models_dir() / name / f"{name}.keras"
        if not path.is_file():
            raise ValueError(f"No shipped weights for model {name!r} at {path}. Train and publish it first "
                             f"(python -m training train {name} --publish), or set RNN_ZOO_MODELS.")
        return path
    text = str(weights)
    if urllib.parse.urlsplit(text).scheme in ("http", "https", "file"):
        return _fetch(name, text)
    path = pathlib.Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"No weights for model {name!r} at {path}. Expected 'default', a `.keras` file or a URL "
                         f"ending in #sha256=<hex>. Received: weights={weights!r}")
    return path


def _fetch(name, url):
    address, _, fragment = url.partition("#")
    expected = fragment.removeprefix("sha256=").lower() if fragment.startswith("sha256=") else ""
    if not _HASH.match(expected):
        raise ValueError(f"`weights` URLs must end in #sha256=<64 hex digits>, the file's hash, so what is fetched "
                         f"can be checked. Received: weights={url!r}")
    cached = cache_dir() / "weights" / f"{expected}.keras"
    if cached.is_file() and sha256_of(cached) == expected:
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=".fetch-", suffix=".keras", dir=cached.parent)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(address, timeout=TIMEOUT_SECONDS) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        received = sha256_of(staging)
        if received != expected:
            raise ValueError(f"The weights fetched for {name!r} from {address} have sha256 {received}, not the "
                             f"{expected} the URL names; the download was discarded.")
        os.replace(staging, cached)  # atomic: a cached file is always a whole, checked one
    except (urllib.error.URLError, OSError) as error:
        raise ConnectionError(f"Could not fetch the weights of {name!r} from {address}: {error}. Check the "
                              "address, or pass a local `.keras` file as `weights`.") from error
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return cached
