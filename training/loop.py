"""The training loop of every gradient-trained model: a `@tf.function` step, checkpoints that resume,
one `tf.distribute` strategy.

A run is a folder (`recipe.out_dir`) holding `config.json`, checkpoints (model,
optimizer, step and any carried state), `metrics.jsonl` and TensorBoard logs.
The data is a function of the step alone (`TaskBatches`, or the character
streams of `training.recipes.char`, which also carry the recurrent state from
one update to the next: truncated BPTT), so a run restored from its checkpoint
at step k ends exactly where an uninterrupted one does.

The loop runs under the strategy of `training.distribute`: one device, several
local devices (`MirroredStrategy`) or several hosts (`MultiWorkerMirroredStrategy`,
from `TF_CONFIG`). The global batch is the recipe's `batch_size` whatever the
replica count; each replica reads its rows of it, so a run on two workers reaches
the weights of a run on one.
"""

import functools
import logging
import time

import keras
import tensorflow as tf

from training import distribute, runs
from training.runs import LossNotFiniteError
from zoo._checks import check_one_of, check_tensorflow_backend

__all__ = ["Trainer", "TaskBatches", "LossNotFiniteError", "task_loss", "LOSSES"]

LOSSES = ("softmax", "sigmoid", "mse")
# Under jit_compile="auto" the step leaves XLA rather than compile for more input shapes than this: each new
# shape compiles anew (about a second), more than XLA saves over a run's steps.
XLA_MAX_SHAPES = 3

log = logging.getLogger(__name__)


@functools.cache
def xla_runs():
    """Whether XLA compiles on this TensorFlow build and device (a build may ship without its JIT)."""
    try:
        tf.function(lambda x: x + 1.0, jit_compile=True)(tf.constant(1.0))
    except (tf.errors.OpError, NotImplementedError):
        return False
    return True


def xla_pays(mixed_precision):
    """Whether `jit_compile="auto"` compiles the step: wherever XLA runs, but not for bfloat16 on a CPU, where XLA's
    own code replaces oneDNN's bfloat16 kernels and the step ran 0.48-0.92x as fast as without it
    (`python -m benchmarks.xla_step --mixed-precision`, xla_step_mixed.json)."""
    return xla_runs() and not (mixed_precision and not tf.config.list_logical_devices("GPU"))


def task_loss(kind, targets, outputs):
    """Loss of `outputs` (logits or values) against `targets`, per example (or per position)."""
    # float32 even under mixed precision: bfloat16 log-probabilities are too coarse.
    check_one_of("loss", kind, LOSSES)
    outputs = tf.cast(outputs, tf.float32)
    if kind == "softmax":
        return keras.losses.sparse_categorical_crossentropy(targets, outputs, from_logits=True)
    if kind == "sigmoid":
        return keras.losses.binary_crossentropy(tf.cast(targets, tf.float32), outputs, from_logits=True)
    return tf.reduce_mean(tf.square(outputs - tf.cast(targets, tf.float32)), axis=-1)  # "mse"


class TaskBatches:
    """Update k's batch drawn from a generator seeded by (seed, k); nothing carried between updates."""

    carries_state = False

    def __init__(self, recipe):
        self.recipe = recipe

    def batch(self, step):
        """`(inputs, targets, fresh)`: `fresh` says the carried state starts from zeros (always, here)."""
        inputs, targets = self.recipe.batch(self.recipe.rng(step))
        return inputs, targets, True


class Trainer:
    """Trains the recipe's model (`training.config.TrainConfig` and its subclasses).

    Args:
        recipe: a gradient-trained recipe.
    """

    def __init__(self, recipe):
        check_tensorflow_backend(
            "training.loop.Trainer",
            "its step is a `tf.function` under a `tf.distribute` strategy with TensorFlow checkpoints (on other "
            "backends, train a zoo model with `model.fit`)",
        )
        self.recipe = recipe
        runs.limit_cpu_threads(recipe.threads)  # before TensorFlow's first op, as the strategy's
        self.strategy = distribute.strategy()
        runs.prepare(recipe.seed, recipe.mixed_precision)
        self.replicas = self.strategy.num_replicas_in_sync
        if recipe.batch_size % self.replicas:
            raise ValueError(f"`batch_size` must be a multiple of the {self.replicas} replicas, each reading an "
                             f"equal share. Received: batch_size={recipe.batch_size}")
        self.data = recipe.training_data()
        with self.strategy.scope():
            self.model = self._built_model()
            # Keras clips each replica's gradient before summing them; with replicas the step clips the sum.
            clipnorm = recipe.clipnorm if self.replicas == 1 else None
            self.optimizer = recipe.make_optimizer(clipnorm, self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        if recipe.ema_momentum and not getattr(self.optimizer, "use_ema", False):
            raise ValueError(f"`ema_momentum` needs an optimizer that averages the weights, but "
                             f"{type(recipe).__name__}.make_optimizer builds a {type(self.optimizer).__name__} that "
                             f"does not. Received: ema_momentum={recipe.ema_momentum}")
        # The carried state lives on the host, outside the strategy: every worker holds the global batch's.
        self.carried = [tf.Variable(tf.zeros((recipe.batch_size, size)), trainable=False, name=f"carried_{i}")
                        for i, size in enumerate(self.model.state_sizes if self.data.carries_state else ())]
        self.chief = distribute.is_chief()
        self.run_dir = distribute.worker_dir(recipe.out_dir)
        carried = {"carried": self.carried} if self.carried else {}
        # TensorFlow's checkpoint of a Keras model leaves its seed generators out: a resumed run would draw other
        # dropout masks than an uninterrupted one. Keras names each generator's state variable so.
        seed_states = [v for v in self.model.non_trainable_variables if v.name == "seed_generator_state"]
        seeds = {"seed_states": seed_states} if seed_states else {}  # none: checkpoints stay as they were
        self.manager = runs.checkpoint_manager(self.run_dir, model=self.model, optimizer=self.optimizer,
                                               step=self.step, **carried, **seeds)
        self._auto_xla = recipe.jit_compile == "auto"
        # One device only: XLA inside a strategy's replicas would also have to compile their all-reduce.
        self._use_step(self.replicas == 1 and xla_pays(recipe.mixed_precision) if self._auto_xla
                       else recipe.jit_compile)

    def _use_step(self, jit_compile):
        self.jit_compile = jit_compile  # what the step runs as now
        self._replica_step = tf.function(self._replica_step_eager, jit_compile=jit_compile)
        self._step_ran = False
        self._xla_shapes = set()  # the input shapes the XLA step has compiled for

    # -- the math ---------------------------------------------------------------
    def forward(self, inputs, states, training):
        """`(outputs, flat float32 states)`; the states are empty when the data carries none, and start at zero
        when a carrying source is given none."""
        if not self.data.carries_state:
            return self.model(inputs, training=training), []
        # No states given (a loss on a fresh batch): the model starts from its zero state.
        initial = self.model.unpack_states(tf.concat(states, axis=-1)) if states else None
        outputs, nested = self.model(inputs, states=initial, training=training)
        return outputs, [tf.cast(s, tf.float32) for layer_states in nested for s in layer_states]

    def _replica_step_eager(self, inputs, targets, states):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            outputs, states = self.forward(inputs, states, training=True)
            per_example = task_loss(self.recipe.loss, targets, outputs)
            # Averaged over the global batch, so the replicas' summed gradients equal one device's.
            loss = tf.reduce_sum(per_example) / tf.cast(tf.size(per_example) * self.replicas, tf.float32)
        gradients = tape.gradient(loss, variables)
        if self.replicas > 1:
            gradients = self._clipped_share(gradients)
        self.optimizer.apply(gradients, variables)
        return loss, states

    def _clipped_share(self, gradients):
        """This replica's share of the clipped global gradient: the optimizer sums the shares."""
        total = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, [tf.convert_to_tensor(g) for g in gradients])
        clipped, _ = tf.clip_by_global_norm(total, self.recipe.clipnorm)
        return [g / self.replicas for g in clipped]

    def train_step(self, inputs, targets, states=()):
        """One update on a global NumPy batch; returns (mean loss, new carried states)."""
        if self.replicas == 1:
            loss, states = self._single_device_step(inputs, targets, list(states))
            return float(loss), states
        shards = distribute.shard(self.strategy, (inputs, targets, list(states)))
        losses, states = self.strategy.run(self._replica_step, args=shards)
        loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        return float(loss), [self.strategy.gather(s, axis=0) for s in states]

    def _single_device_step(self, inputs, targets, states):
        """The step as compiled; under jit_compile="auto" it leaves XLA for good when its first call does not
        compile (an op without an XLA kernel: compiling fails before anything runs, so no update is lost) or
        before a batch of yet another shape would compile anew."""
        if not (self._auto_xla and self.jit_compile):
            return self._replica_step(inputs, targets, states)
        self._xla_shapes.add(tuple(tuple(x.shape) for x in tf.nest.flatten((inputs, targets, states))))
        if len(self._xla_shapes) > XLA_MAX_SHAPES:
            log.warning("The train step runs without XLA from now on: its batches came in more than %d shapes, "
                        "and XLA compiles each one anew", XLA_MAX_SHAPES)
            self._use_step(False)
            return self._replica_step(inputs, targets, states)
        try:
            result = self._replica_step(inputs, targets, states)
        except tf.errors.OpError as error:
            if self._step_ran:
                raise
            return self._plain_step_instead(error, inputs, targets, states)
        self._step_ran = True
        return result

    def _plain_step_instead(self, xla_error, inputs, targets, states):
        """The plain step on the batch whose first XLA call failed; it keeps the plain step only when that runs.
        Otherwise the batch itself is at fault (bad ids, say): its own error is raised, not a word about XLA."""
        self._use_step(False)
        try:
            result = self._replica_step(inputs, targets, states)
        except tf.errors.OpError:
            self._use_step(True)
            raise
        log.warning("The train step runs without XLA: it does not compile (%s)",
                    str(xla_error).strip().split("\n")[0])
        return result

    def loss_on(self, inputs, targets):
        """Mean loss of the current model on a batch, without training."""
        outputs, _ = self.forward(inputs, [], training=False)
        return float(tf.reduce_mean(task_loss(self.recipe.loss, targets, outputs)))

    # -- running ----------------------------------------------------------------
    def restore(self):
        """Resumes from the newest checkpoint (the chief's, on every worker); returns the step reached."""
        runs.restore(self.manager, distribute.worker_dir(self.recipe.out_dir, chief=True) / "checkpoints")
        return int(self.step.numpy())

    def fit(self, verbose=1):
        """Trains until `recipe.steps` (resuming a checkpoint); returns the recipe's figures and the run's cost."""
        recipe = self.recipe
        verbose = verbose if self.chief else 0
        log = runs.MetricsLog(self.run_dir)
        (log.out_dir / "config.json").write_text(recipe.to_json())
        start = self.restore()
        if verbose:
            print((f"Resumed {recipe.out_dir} at step {start}. " if start else "") + runs.device_line(recipe.model))
        progress = keras.utils.Progbar(recipe.steps, verbose=verbose)
        progress.update(start)
        began, began_cpu = time.time(), time.process_time()
        for step in range(start, recipe.steps):
            loss = self._one_update(step)
            metrics = {"step": step + 1, "loss": loss, **recipe.step_metrics(loss), "seconds": time.time() - began,
                       "cpu_seconds": time.process_time() - began_cpu, "segment_start": began}
            if (step + 1) % recipe.eval_every == 0:
                metrics.update(recipe.periodic_metrics(self.model))
            log.write(metrics)
            if (step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.steps:
                self.manager.save(checkpoint_number=step + 1)
            progress.update(step + 1, [("loss", loss)])
        return self.final_metrics()

    def final_metrics(self):
        """The recipe's figures for `trained_model` on held-out data, and what the training cost over every resumed
        segment. With weight averaging, also the last update's weights' figures (keys prefixed `last_weights_`)."""
        cost = runs.run_cost(self.run_dir)
        last = {}
        if self.recipe.ema_momentum and "trained_model" not in self.__dict__:
            last = {f"last_weights_{name}": value for name, value in self.recipe.evaluate(self.model).items()}
        return {**self.recipe.evaluate(self.trained_model), **last, "steps": int(self.step.numpy()),
                "train_cpu_minutes": cost["cpu_seconds"] / 60, "train_wall_minutes": cost["wall_seconds"] / 60,
                "threads": self.recipe.threads}

    @functools.cached_property
    def trained_model(self):
        """The trained weights in the model that is judged, exported and served: a float32 one.

        Under mixed precision the model trained computes in bfloat16, and a graph exported from it would too; its
        variables are float32 already, so a twin built under the float32 policy takes them unchanged. Call it once
        training is over: it leaves the float32 policy set, and with `ema_momentum` the averaged weights in the
        trained model."""
        if self.recipe.ema_momentum:
            self.optimizer.finalize_variable_values(self.model.trainable_variables)
        if not self.recipe.mixed_precision:
            return self.model
        keras.mixed_precision.set_global_policy("float32")
        twin = self._built_model()
        twin.set_weights(self.model.get_weights())
        return twin

    def _built_model(self):
        """The recipe's model under the current dtype policy, its weights created on the first batch's first row."""
        model = self.recipe.build_model()
        inputs, _, _ = self.data.batch(0)
        model(tf.nest.map_structure(lambda x: x[:1], inputs))
        return model

    def _one_update(self, step):
        inputs, targets, fresh = self.data.batch(step)
        if fresh:  # new streams: nothing to carry over
            for variable in self.carried:
                variable.assign(tf.zeros_like(variable))
        loss, states = self.train_step(inputs, targets, [v.value() for v in self.carried])
        runs.check_finite(loss, step + 1, self.manager)
        for variable, value in zip(self.carried, states):
            variable.assign(tf.cast(value, variable.dtype))  # the carried state stays float32
        self.step.assign(step + 1)
        return loss

