"""Data for the zoo's tasks: corpora and generated toy tasks."""

from training.data.text import Corpus, load_corpus, text_file_corpus

__all__ = ["Corpus", "load_corpus", "text_file_corpus"]
