"""Character language models (char_lstm, char_gru, char_elman): truncated BPTT over parallel streams of a
corpus, judged by cross-entropy on every character of the held-out plays.

The text is cut into `batch_size` contiguous streams (`training.bptt`); update k
reads chunk k of every stream and the loop carries the recurrent state from one
chunk to the next, so the model sees unbroken text while gradients stop at
chunk boundaries. An epoch's streams start at an offset drawn from (seed,
epoch), so chunk boundaries move between epochs.
"""

import dataclasses
import functools
import math
import weakref
from typing import ClassVar

from training import bptt
from training.config import LR_DECAYS, TrainConfig, knob

__all__ = ["CharRecipe", "CharLSTMRecipe", "CharGRURecipe", "CharElmanRecipe", "CharStreams", "BUDGET_MINUTES"]

LN2 = math.log(2.0)
# The card's eigenvalue picture reads this (Hamlet III.1; Hamlet is one of the validation plays).
_PASSAGE = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
            "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n"
            "And by opposing end them. To die, to sleep;\nNo more; and by a sleep to say we end\n"
            "The heart-ache and the thousand natural shocks\nThat flesh is heir to.")
BUDGET_MINUTES = 45  # CPU-minutes of training on one thread: the budget all three character models share
_SCHEDULES = {"cosine": "with cosine decay", "constant": "at a constant rate"}


@dataclasses.dataclass
class CharRecipe(TrainConfig):
    """Next-character prediction on a corpus (the Shakespeare plays unless `text` names a file)."""

    model: str = "char_lstm"
    text: str = ""  # a UTF-8 file to train on; "" = the Shakespeare corpus
    steps: int = 2400
    batch_size: int = 64  # parallel streams, each carried across chunks
    seq_len: int = 100  # characters backpropagated through per update
    learning_rate: float = 2e-3
    lr_decay: str = knob("cosine", choices=LR_DECAYS)
    clipnorm: float = 5.0
    dropout: float = knob(0.0, at_least=0.0, below=1.0)  # CharLM's, between layers, in training only
    eval_every: int = 500
    eval_chars: int = 60_000  # validation characters per periodic pass (the final pass reads all)

    loss: ClassVar[str] = "softmax"
    bar: ClassVar[float | None] = None  # nats per character within BUDGET_MINUTES; None: reported beside char_lstm

    def __post_init__(self):
        super().__post_init__()
        if self.eval_chars < self.batch_size * (self.seq_len + 1):
            # Each stream needs seq_len inputs and one more character as the last target.
            raise ValueError(
                f"`eval_chars` must fill one chunk of every stream, at least batch_size * (seq_len + 1) = "
                f"{self.batch_size * (self.seq_len + 1)}. Received: eval_chars={self.eval_chars}")

    @functools.cached_property
    def corpus(self):
        from training.data import load_corpus

        return load_corpus(self.text or None)

    def data_description(self):
        return self.corpus.source

    def build_model(self):
        import zoo

        return zoo.get(self.model, **{"vocabulary": self.corpus.vocabulary, "dropout": self.dropout, **self.overrides})

    def training_data(self):
        return CharStreams(self)

    def step_metrics(self, loss):
        return {"bpc": loss / LN2}

    def periodic_metrics(self, model):
        nats = self.cross_entropy(model, self.eval_chars)
        return {"val_nats": nats, "val_bpc": nats / LN2}

    def diagnostic_inputs(self, model):
        """Hamlet's soliloquy in the model's characters: fixed text from a held-out play, so a shipped model's
        figures need no corpus download."""
        import numpy as np

        known = [model.vocabulary.index(ch) for ch in _PASSAGE if ch in model.vocabulary]
        return np.array([known[:120], known[40:160]], np.int32)  # two overlapping windows, (2, 120)

    def evaluate(self, model):
        nats = self.cross_entropy(model)
        return {"val_nats_per_char": nats, "val_bits_per_char": nats / LN2}

    def cross_entropy(self, model, max_chars=None):
        """Validation cross-entropy in nats per character (every held-out character when `max_chars` is None)."""
        import tensorflow as tf

        ids = self.corpus.encode(self.corpus.validation)
        ids = ids if max_chars is None else ids[: max_chars + 1]
        streams = bptt.as_streams(ids, self.batch_size)
        states = [tf.zeros((self.batch_size, size)) for size in model.state_sizes]
        step, total, count = _eval_step(model), 0.0, 0
        for index in range(bptt.chunk_count(streams, self.seq_len)):
            inputs, targets = bptt.chunk(streams, index, self.seq_len)
            loss_sum, states = step(inputs, targets, states)
            total, count = total + float(loss_sum), count + targets.size
        return total / count

    def judge(self, metrics):
        value, minutes = metrics["val_nats_per_char"], metrics["train_cpu_minutes"]
        return {
            "metric": "val_nats_per_char", "value": value,
            "bar": f"<= {self.bar} within {BUDGET_MINUTES} CPU-minutes" if self.bar else
            f"reported (same data and budget as char_lstm: {BUDGET_MINUTES} CPU-minutes)",
            "passed": value <= self.bar and minutes <= BUDGET_MINUTES if self.bar else None,
            "anchor": "nanoGPT on tiny-shakespeare (1 M characters, not held-out plays): GPU 3 min 1.47 nats, "
            "CPU 3 min 1.88 nats",
            "data": self.corpus.source,
            "notes": f"{self.steps} updates of {self.batch_size} streams x {self.seq_len} characters (truncated "
            f"BPTT), Adam {self.learning_rate} {_SCHEDULES[self.lr_decay]}, "
            f"{f'dropout {self.dropout}, ' if self.dropout else ''}"
            f"{'bfloat16 compute, ' if self.mixed_precision else ''}{self.threads} thread(s): "
            f"{minutes:.1f} CPU-minutes, {metrics['train_wall_minutes']:.1f} wall-minutes; validation reads every "
            "character of the four held-out plays",
        }

    def quality(self):
        """Measures the run folder of `python -m training train NAME` (runs/<name>): a finished run is measured,
        not retrained (its checkpoint resumes at the last step); an absent or unfinished one trains first."""
        return super(CharRecipe, self.replace(out_dir=f"runs/{self.model}")).quality()


# The character models' recipes. All three share one budget, 45 CPU-minutes on one thread (the bar of
# char_lstm), and one shape that won for the LSTM: 512 units, 32 streams of 50 characters, bfloat16 products
# (a CPU with AVX512_BF16 or a GPU runs them natively; elsewhere `--no-mixed-precision`), dropout 0.1 between
# layers and the weights' average handed over; each cell gets the updates its cost per update buys on the
# reference machine's Intel Xeon. Before, at 256 units and 128 streams of 100 characters, twice the updates on
# half the characters had won for the LSTM (1.52 against 1.69 nats/char after the same characters), and wider
# layers then beat more updates (`benchmarks.char_recipes`, BENCHMARKS.md).
@dataclasses.dataclass
class BudgetCharRecipe(CharRecipe):
    """The shape the three character recipes share; each sets its model and the updates its budget buys."""

    batch_size: int = 32
    seq_len: int = 50
    dropout: float = knob(0.1, at_least=0.0, below=1.0)
    ema_momentum: float = knob(0.999, at_least=0.0, below=1.0)
    eval_every: int = 1000
    mixed_precision: bool = True
    threads: int = knob(1, minimum=0)


@dataclasses.dataclass
class CharLSTMRecipe(BudgetCharRecipe):
    """12,700 updates cost 41.6 CPU-minutes and reached 1.349 nats/char (the last update's weights: 1.350),
    where the best 384-unit recipe stayed at 1.360."""

    model: str = "char_lstm"
    steps: int = 12700
    bar: ClassVar[float | None] = 1.50


@dataclasses.dataclass
class CharGRURecipe(BudgetCharRecipe):
    """16,000 updates cost 39.5 CPU-minutes and reached 1.354 nats/char (the last update's weights: 1.357), where
    256 units, 128 streams of 100 characters and 7,000 float32 updates had reached 1.411."""

    model: str = "char_gru"
    steps: int = 16000


@dataclasses.dataclass
class CharElmanRecipe(BudgetCharRecipe):
    """48,000 cheap updates at Adam 0.0005 cost 38.7 CPU-minutes and reached 1.435 nats/char, where 256 units,
    128 streams of 100 characters and 17,000 float32 updates had reached 1.486. At 0.002, the other recipes'
    rate, the wider Elman nets stayed on the unigram plateau far longer than 256 units do (a session's probe;
    1,024 units never left it in the first 6,000 updates)."""

    model: str = "char_elman"
    steps: int = 48000
    learning_rate: float = 5e-4
    eval_every: int = 4000


class CharStreams:
    """The loop's data source for a character recipe: chunk k of the epoch's streams, state carried."""

    carries_state = True

    def __init__(self, recipe):
        self.recipe = recipe
        self.ids = recipe.corpus.encode(recipe.corpus.train)
        self._epoch_streams = {}

    def _streams(self, epoch):
        if epoch not in self._epoch_streams:
            offset = bptt.epoch_offset(self.recipe.seed, epoch, self.recipe.seq_len)
            self._epoch_streams = {epoch: bptt.as_streams(self.ids, self.recipe.batch_size, offset)}
        return self._epoch_streams[epoch]

    def locate(self, step):
        """(epoch, chunk index) of update `step`."""
        epoch, seq_len, batch = 0, self.recipe.seq_len, self.recipe.batch_size
        while True:
            length = (len(self.ids) - bptt.epoch_offset(self.recipe.seed, epoch, seq_len)) // batch
            count = (length - 1) // seq_len
            if step < count:
                return epoch, step
            step, epoch = step - count, epoch + 1

    def batch(self, step):
        """`(inputs, targets, fresh)`: a new epoch starts new streams, with nothing to carry over."""
        epoch, index = self.locate(step)
        inputs, targets = bptt.chunk(self._streams(epoch), index, self.recipe.seq_len)
        return inputs, targets, index == 0


_EVAL_STEPS = weakref.WeakKeyDictionary()  # model -> its traced evaluation step


def _eval_step(model):
    """`(inputs, targets, flat states) -> (summed cross-entropy, next flat states)`, traced once per model."""
    if model not in _EVAL_STEPS:
        import tensorflow as tf

        from training.loop import task_loss

        @tf.function
        def step(inputs, targets, flat_states):
            states = model.unpack_states(tf.concat(flat_states, axis=-1))
            logits, states = model(inputs, states=states, training=False)
            summed = tf.reduce_sum(task_loss("softmax", targets, logits))
            return summed, [tf.cast(s, tf.float32) for layer_states in states for s in layer_states]

        _EVAL_STEPS[model] = step
    return _EVAL_STEPS[model]
