"""The configuration of one training run, saved beside its checkpoints."""

import dataclasses
import json

__all__ = ["TrainConfig", "CHAR_RECIPES", "char_recipe"]


@dataclasses.dataclass
class TrainConfig:
    model: str = "char_lstm"  # a registered zoo name
    text: str | None = None  # a UTF-8 file to train on; None = the Shakespeare corpus
    steps: int = 2400  # optimizer updates
    batch_size: int = 64  # parallel streams, each carried across chunks (truncated BPTT)
    seq_len: int = 100  # characters backpropagated through per update
    learning_rate: float = 2e-3  # Adam
    lr_decay: str = "cosine"  # "cosine": down to 5% of learning_rate at the last step; "constant"
    clipnorm: float = 5.0  # global gradient-norm clip: tames the exploding-gradient spikes of BPTT
    eval_every: int = 500  # steps between validation passes
    eval_chars: int = 60_000  # validation characters per periodic pass (the final pass reads all)
    checkpoint_every: int = 250  # steps between checkpoints
    seed: int = 0
    jit_compile: bool = False  # XLA for the train step (GPU); export never uses XLA
    mixed_precision: bool = False  # bfloat16 compute, float32 weights and state (GPU)
    # CPU threads for TensorFlow's ops; 0 = TensorFlow's default (every core). One thread
    # spends the fewest CPU-seconds per update (2 cores: 0.49 s against 0.64 s for char_lstm).
    threads: int = 0
    out_dir: str = ""  # checkpoints, logs, config.json; "" = runs/<model>
    overrides: dict = dataclasses.field(default_factory=dict)  # architecture arguments

    def __post_init__(self):
        self.out_dir = self.out_dir or f"runs/{self.model}"
        for name in ("steps", "batch_size", "seq_len", "eval_every", "eval_chars", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        if self.eval_chars < self.batch_size * (self.seq_len + 1):
            # Each stream needs seq_len inputs and one more character as the last target.
            raise ValueError(
                f"`eval_chars` must fill one chunk of every stream, at least batch_size * (seq_len + 1) = "
                f"{self.batch_size * (self.seq_len + 1)}. Received: eval_chars={self.eval_chars}"
            )
        if not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"`threads` must be an integer >= 0 (0 = every core). Received: threads={self.threads!r}")
        if self.lr_decay not in ("cosine", "constant"):
            raise ValueError(f"`lr_decay` must be 'cosine' or 'constant'. Received: lr_decay={self.lr_decay!r}")
        for name in ("learning_rate", "clipnorm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0. Received: {name}={getattr(self, name)!r}")

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))


# The character models' recipes: the fields that differ from TrainConfig's defaults.
# All three share one budget, 45 CPU-minutes on one thread (the bar of char_lstm), so
# each cell gets the updates its cost per update buys: measured at batch 128 on the
# 2-core reference machine, LSTM 0.26 (50 characters), GRU 0.37 and Elman 0.145
# (100 characters) CPU-seconds per update. For the LSTM, twice the updates on half the
# characters won: at 2,000 updates seq_len 50 had validated 1.52 nats/char where
# seq_len 100 had 1.69 after the same characters (1,000 updates).
CHAR_RECIPES = {
    "char_lstm": {"batch_size": 128, "seq_len": 50, "steps": 9600, "threads": 1},
    "char_gru": {"batch_size": 128, "steps": 7000, "threads": 1},
    "char_elman": {"batch_size": 128, "steps": 17000, "threads": 1},
}


def char_recipe(model, **fields):
    """The TrainConfig that `python -m training train <model>` runs, `fields` replacing its values."""
    return TrainConfig(**{"model": model, **CHAR_RECIPES.get(model, {}), **fields})
