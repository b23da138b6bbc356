"""Training on the generated tasks: a `@tf.function` step over batches drawn from a recipe.

Same run folder, checkpoints, NaN guard and logs as the character loop
(`training.runs`). The batch of update k is drawn from a generator seeded by
(seed, k), so a run restored from its checkpoint at step k ends exactly where
an uninterrupted one does. With several devices visible (GPUs, or logical
CPUs configured before TensorFlow starts) the step runs under
`tf.distribute.MirroredStrategy`, the batch split across replicas.
"""

import time

import keras
import tensorflow as tf

import zoo
from training import runs

__all__ = ["TaskTrainer", "task_loss"]


def task_loss(kind, targets, outputs):
    """Mean loss of `outputs` (float32 logits or values) against `targets`, per example."""
    outputs = tf.cast(outputs, tf.float32)
    if kind == "softmax":
        return keras.losses.sparse_categorical_crossentropy(targets, outputs, from_logits=True)
    if kind == "sigmoid":
        return keras.losses.binary_crossentropy(tf.cast(targets, tf.float32), outputs, from_logits=True)
    if kind == "mse":
        return tf.reduce_mean(tf.square(outputs - tf.cast(targets, tf.float32)), axis=-1)
    raise ValueError(f"`loss` must be 'softmax', 'sigmoid' or 'mse'. Received: loss={kind!r}")


def _strategy():
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()  # the default, single-device strategy


class TaskTrainer:
    """Trains the recipe's architecture on its task.

    Args:
        recipe: a `training.recipes.TaskRecipe`.
    """

    def __init__(self, recipe):
        self.recipe = recipe
        runs.prepare(recipe.seed, recipe.mixed_precision)
        self.strategy = _strategy()
        inputs, _ = recipe.batch(recipe.rng(0))
        with self.strategy.scope():
            self.model = zoo.get(recipe.model, **recipe.overrides)
            self.model(tf.nest.map_structure(lambda x: x[:1], inputs))  # create the weights (inputs may be a tuple)
            self.optimizer = runs.make_optimizer(recipe.learning_rate, recipe.clipnorm, self.model.trainable_variables,
                                                 decay_steps=recipe.steps if recipe.lr_decay else None)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.manager = runs.checkpoint_manager(
            recipe.out_dir, model=self.model, optimizer=self.optimizer, step=self.step
        )
        self._replica_step = tf.function(self._replica_step_eager, jit_compile=recipe.jit_compile)

    def _replica_step_eager(self, inputs, targets):
        with tf.GradientTape() as tape:
            per_example = task_loss(self.recipe.loss, targets, self.model(inputs, training=True))
            # Averaged over the global batch, so replicas' summed gradients equal one device's.
            loss = tf.reduce_sum(per_example) / tf.cast(tf.size(per_example) * self.strategy.num_replicas_in_sync,
                                                        tf.float32)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return loss

    def train_step(self, inputs, targets):
        """One update on a NumPy batch; returns the batch's mean loss."""
        if self.strategy.num_replicas_in_sync == 1:
            return float(self._replica_step(inputs, targets))
        dataset = tf.data.Dataset.from_tensors((inputs, targets))
        batch = next(iter(self.strategy.experimental_distribute_dataset(dataset)))
        losses = self.strategy.run(self._replica_step, args=batch)
        return float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None))

    def loss_on(self, inputs, targets):
        """Mean loss of the current model on a batch, without training."""
        return float(tf.reduce_mean(task_loss(self.recipe.loss, targets, self.model(inputs))))

    def restore(self):
        runs.restore(self.manager)
        return int(self.step.numpy())

    def fit(self, verbose=1):
        """Trains until `recipe.steps` (resuming a checkpoint); returns the recipe's figures."""
        recipe = self.recipe
        log = runs.MetricsLog(recipe.out_dir)
        (log.out_dir / "config.json").write_text(recipe.to_json())
        start = self.restore()
        if verbose:
            print((f"Resumed {recipe.out_dir} at step {start}. " if start else "") + runs.device_line(recipe.model))
        progress = keras.utils.Progbar(recipe.steps, verbose=verbose)
        progress.update(start)
        began = time.time()
        for step in range(start, recipe.steps):
            loss = self.train_step(*recipe.batch(recipe.rng(step)))
            runs.check_finite(loss, step + 1, self.manager)
            self.step.assign(step + 1)
            metrics = {"step": step + 1, "loss": loss, "seconds": time.time() - began}
            if (step + 1) % recipe.eval_every == 0:
                metrics.update(recipe.evaluate(self.model))
            log.write(metrics)
            if (step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.steps:
                self.manager.save(checkpoint_number=step + 1)
            progress.update(step + 1, [("loss", loss)])
        return {**recipe.evaluate(self.model), "steps": int(self.step.numpy())}
