"""Small pieces the task recipes share."""

import numpy as np

__all__ = ["predict", "held_out"]


def predict(model, inputs, batch_size=256):
    """`model`'s outputs on `inputs` as one NumPy array, run `batch_size` rows at a time."""
    return np.concatenate([np.asarray(model(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)])


def held_out(recipe, count):
    """The fixed evaluation batch: `count` sequences drawn from a stream no update uses."""
    return recipe.batch(np.random.default_rng([recipe.seed, 10**6]), count)
