"""Hinton's bit-serial adder (lecture 7c): three hidden units learn the adder automaton on 8-bit sums and
are tested on 1,000 random 64-bit sums."""

import dataclasses
from typing import ClassVar

import numpy as np

from training.config import TrainConfig, knob
from training.data import binary_addition
from training.recipes._common import predict

__all__ = ["BinaryAdderRecipe"]


@dataclasses.dataclass
class BinaryAdderRecipe(TrainConfig):
    """Bit pairs in, the sum bit out two steps later; judged by exact 64-bit sums."""

    model: str = "binary_adder"
    steps: int = 4000
    batch_size: int = 64
    learning_rate: float = 5e-2  # 22 weights: a large step is safe and fast
    seed: int = knob(1, minimum=0)  # many seeds stall at ~53% exact sums; `quality` picks one on 8-bit sums
    train_bits: int = 8
    test_bits: int = 64
    test_sums: int = 1000
    seeds_to_try: int = 8  # `quality` restarts from the next seed until one learns the 8-bit sums exactly

    loss: ClassVar[str] = "sigmoid"

    def batch(self, rng, batch_size=None):
        return binary_addition.addition_batch(rng, batch_size or self.batch_size, self.train_bits)

    def evaluate(self, model):
        figures = {}
        for bits in (self.train_bits, self.test_bits):
            inputs, targets = binary_addition.addition_batch(
                np.random.default_rng([self.seed, 10**6, bits]), self.test_sums, bits)
            predicted = (predict(model, inputs) > 0).astype(np.float32)
            figures[f"exact_{bits}bit"] = binary_addition.exact_match(predicted, targets)
        return figures

    def judge(self, metrics):
        value = metrics[f"exact_{self.test_bits}bit"]
        return {"metric": f"exact_{self.test_bits}bit", "value": value, "bar": ">= 1.0", "passed": value >= 1.0,
                "anchor": "Hinton lecture 7c: 3 hidden units learn the adder automaton (no published length figure)"}

    def quality(self):
        """Restarts over seeds until one learns the training-length sums exactly (chosen on those alone)."""
        tried = []
        for seed in range(self.seeds_to_try):
            recipe = self.replace(seed=seed, out_dir=f"{self.out_dir}-{seed}")
            model, metrics = recipe.train(verbose=0)
            tried.append({"seed": seed, **metrics})
            if metrics[f"exact_{self.train_bits}bit"] == 1.0:
                break
        notes = f"seeds tried in order until 100% on {self.test_sums:,} {self.train_bits}-bit sums: {tried}"
        return model, recipe, {**recipe.judge(metrics), "metrics": metrics, "notes": notes}
