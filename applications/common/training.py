"""Training-loop plumbing every application shares.

`set_seed` makes a run repeatable; `warmup_cosine` is the default
learning-rate schedule (a keras `CosineDecay` with linear warmup, so it
serializes with the model); `fit` runs `model.fit` inside a `RunFolder` with
progress bars, a checkpoint after every epoch (`--resume`), the history as
CSV and the learning-curves picture.
"""

import contextlib
import csv
import sys
import time

import keras
import numpy as np

from applications.common import reporting
from applications.common.errors import UserError
from applications.common.run_folder import HISTORY_FILE, LEARNING_CURVES_FILE
from keras_attention.finetune import restart_lora


def set_seed(seed):
    """Seed Python, NumPy and the backend, and make TensorFlow ops deterministic.

    With the same seed, the same data and the same machine, a run gives the
    same weights and metrics.
    """
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # Data pipelines of applications may use TF.

        tf.config.experimental.enable_op_determinism()


def warmup_cosine(peak_learning_rate, total_steps, warmup_steps, final_fraction=0.0):
    """Linear warmup from 0 to `peak_learning_rate`, then cosine decay.

    Args:
        peak_learning_rate: float. The rate reached after warmup.
        total_steps: int. Optimizer steps of the whole run.
        warmup_steps: int. Steps of linear warmup.
        final_fraction: float. The last rate as a fraction of the peak.

    Returns:
        A `keras.optimizers.schedules.CosineDecay` (serializable).

    Example:
    >>> schedule = warmup_cosine(1e-3, total_steps=100, warmup_steps=10)
    >>> round(float(schedule(10)), 6), round(float(schedule(100)), 6)
    (0.001, 0.0)
    """
    warmup_steps = int(min(max(warmup_steps, 0), max(total_steps - 1, 0)))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(int(total_steps) - warmup_steps, 1),
        alpha=final_fraction,
        warmup_target=peak_learning_rate,
        warmup_steps=warmup_steps,
    )


class HistoryWriter(keras.callbacks.Callback):
    """Writes one CSV row per completed epoch (metrics, learning rate, seconds).

    On a resumed run it first drops rows of epochs the checkpoint does not
    hold, so every epoch appears once.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self._rows = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._rows is None:
            self._rows = [r for r in reporting.read_history(self.path) if int(r["epoch"]) < epoch]
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            # The rate used in the epoch's last step: under loss scaling, of the inner
            # optimizer; with layer-wise rates (a MultiOptimizer), of its default (the top's), last.
            optimizer = getattr(optimizer, "inner_optimizer", optimizer)
            optimizer = getattr(optimizer, "optimizers", [optimizer])[-1]
            row["learning_rate"] = float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        row["seconds"] = round(time.perf_counter() - self._start, 3)
        self._rows.append(row)
        columns = list(dict.fromkeys(k for r in self._rows for k in r))
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self._rows)
        temporary.replace(self.path)


class Checkpoint(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose restore, when the model does not fit, is a user error."""

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except ValueError as error:  # keras: "... objects could not be loaded ..."
            raise UserError(
                f"--resume: the interrupted run's checkpoint does not fit this model "
                f"({str(error).splitlines()[0]}). Resume with the flags of the interrupted "
                "run, or pass --overwrite to start over."
            ) from None


def progress_verbosity(quiet=False):
    """`model.fit` verbosity: a progress bar on a terminal, a line per epoch in a log."""
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def fit(model, train_data, run, epochs, validation_data=None, callbacks=(), quiet=False, **kwargs):
    """`model.fit` inside a run folder: checkpoint, history, learning curves.

    Args:
        model: a compiled, built `keras.Model`.
        train_data: a `tf.data.Dataset` (or anything `model.fit` takes as
            `x`), or a tuple `(x, y)` of arrays.
        run: the `RunFolder` being written.
        epochs: int. Total epochs (a resumed run does only the rest).
        validation_data: optional, as for `model.fit`.
        callbacks: extra callbacks, run after ours.
        quiet: bool. No progress output.
        **kwargs: passed to `model.fit`.

    Returns:
        The history as a list of dicts, one per epoch, resumed epochs included.
    """
    history_path = run.file(HISTORY_FILE)
    all_callbacks = [
        Checkpoint(str(run.checkpoint_dir), delete_checkpoint=False),
        # A restored checkpoint holds LoRA layers merged, their adapters zero: they would not train.
        keras.callbacks.LambdaCallback(on_train_begin=lambda logs: restart_lora(model)),
        HistoryWriter(history_path),
        keras.callbacks.TerminateOnNaN(),
        *callbacks,
    ]
    validation_data = _without_autotune(_evenly_split(validation_data, model))
    x, y = train_data if isinstance(train_data, tuple) and len(train_data) == 2 else (train_data, None)
    if y is None:
        x = _without_autotune(_evenly_split(x, model))
        kwargs.setdefault("shuffle", False)  # A dataset shuffles itself (seeded).
        if "steps_per_epoch" not in kwargs:
            x, kwargs["steps_per_epoch"] = _one_iterator(x)
    if "validation_steps" not in kwargs:
        validation_data, kwargs["validation_steps"] = _one_iterator(validation_data)
    with _first_batch_check_off(model):
        model.fit(
            x,
            y,
            epochs=epochs,
            validation_data=validation_data,
            callbacks=all_callbacks,
            verbose=progress_verbosity(quiet),
            **kwargs,
        )
    history = reporting.read_history(history_path)
    reporting.plot_learning_curves(history, run.file(LEARNING_CURVES_FILE))
    return history


def _without_autotune(dataset):
    """A `tf.data.Dataset` with tf.data's autotuning off (other data pass unchanged).

    Keras drops the validation iterator before each evaluation (`EpochIterator.reset`),
    and with autotuning on, dropping an iterator waited for the autotuning thread: on the
    2-core development machine 8 s per epoch at first, about 30 s later in the run (11 of
    28 Fashion-MNIST epochs took 82 s instead of 53 s; a stack sample put the time in
    `reset`). With it off there is no wait, and the pipelines here, far faster than the
    models they feed, did not slow training down (Fashion-MNIST epochs of 51-53 s after,
    against 53 s for the epochs that did not stall before).
    """
    if not hasattr(dataset, "with_options"):
        return dataset
    import tensorflow as tf  # Only for a tf.data dataset.

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _one_iterator(dataset):
    """`(dataset.repeat(), batches in one pass)` for a `tf.data.Dataset` of known size.

    Other data come back as `(data, None)`. Given steps, `model.fit` keeps one
    iterator over the repeated dataset for the whole run. Without them, Keras
    (3.15, `EpochIterator`) starts a new iterator when an epoch's pass ends and
    another when the next epoch begins, throwing the first away, and on the
    2-core development machine the first step of about half of the epochs
    stalled 8-10 s (Fashion-MNIST epochs of 40 batches took 19-21 s instead of
    10-11 s). Each repetition is still one whole pass, reshuffled from the
    seed; the orders are not those of before, which skipped every other
    shuffle.
    """
    cardinality = getattr(dataset, "cardinality", None)
    if cardinality is None:
        return dataset, None
    batches = int(cardinality())
    if batches <= 0:  # Infinite (-1), unknown (-2) or empty: leave it to Keras.
        return dataset, None
    return dataset.repeat(), batches


@contextlib.contextmanager
def _first_batch_check_off(model):
    """Under MultiWorkerMirroredStrategy, let `model.fit` skip Keras's look at the first batch.

    Keras's TensorFlow trainer (keras 3.15, `_maybe_symbolic_build` in
    keras/src/backend/tensorflow/trainer.py) reduces the first batch of the data across
    replicas before training, to build the model; under MultiWorkerMirroredStrategy that
    reduce always fails (tensorflow/tensorflow#72388). Our models are built already; with
    the model's own strategy unset, `model.distribute_strategy` is the strategy of the
    scope, the same one, and the check is skipped. Restored after `fit`. (Under
    MirroredStrategy the check stays: skipping it defers building the optimizer into the
    traced step, which fails there; `_evenly_split` serves instead.)
    """
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None:
        yield
        return
    import tensorflow as tf  # Only under a tf.distribute strategy.

    if not (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and model.built
            and tf.distribute.has_strategy() and tf.distribute.get_strategy() is strategy):
        yield
        return
    model._distribute_strategy = None
    try:
        yield
    finally:
        model._distribute_strategy = strategy


def _evenly_split(dataset, model):
    """A dataset whose batches split evenly across the replicas of a distributed run.

    Under R > 1 replicas each batch is cut to a multiple of R (with a batch size that
    is a multiple of R, only the last batch of a pass loses examples, at most R - 1)
    and a batch left empty is dropped. Keras's
    JAX trainer (3.15) shards every batch over the devices of its `DataParallel`
    distribution and fails on one that does not split (keras-team/keras#21167); its
    TensorFlow trainer takes the MEAN over replicas of the first validation batch
    (`_maybe_symbolic_build`, see above), which fails the same way (143 examples on
    2 replicas: 72 != 71). Other data pass unchanged.
    """
    count = replicas(model)
    if count < 2 or dataset is None or not hasattr(dataset, "element_spec"):
        return dataset
    import tensorflow as tf  # Only for a tf.data dataset.

    def even(*batch):
        size = tf.shape(tf.nest.flatten(batch)[0])[0]
        cut = tf.nest.map_structure(lambda tensor: tensor[: size - size % count], batch)
        return cut if len(batch) > 1 else cut[0]

    def not_empty(*batch):
        return tf.shape(tf.nest.flatten(batch)[0])[0] > 0

    return dataset.map(even).filter(not_empty)


def replicas(model=None):
    """How many devices share each batch of `model` (1 when it is not distributed).

    The devices of Keras's distribution in scope (`keras.distribution.DataParallel`
    under JAX), else the replicas of the model's `tf.distribute` strategy.
    """
    distribution = keras.distribution.distribution()
    if distribution is not None:
        return int(distribution.device_mesh.devices.size)
    strategy = getattr(model, "distribute_strategy", None)
    return getattr(strategy, "num_replicas_in_sync", 1)


def predict_evenly(model, inputs, batch_size):
    """`model.predict(inputs)` in batches that split evenly across the replicas.

    Under a distributed run (see `replicas`) the inputs (an array or a list)
    are padded with copies of their last example to a multiple of the
    replicas, the batch size rounded up to one, and the outputs cut back:
    a prediction cannot drop examples the way `fit`'s batches do.
    """
    count = replicas(model)
    if count < 2 or len(inputs) == 0:
        return model.predict(inputs, batch_size=batch_size, verbose=0)
    size, padding = len(inputs), -len(inputs) % count
    if isinstance(inputs, list):
        padded = inputs + inputs[-1:] * padding
    else:
        padded = np.concatenate([inputs, np.repeat(inputs[-1:], padding, axis=0)])
    outputs = model.predict(padded, batch_size=-(-batch_size // count) * count, verbose=0)
    return keras.tree.map_structure(lambda output: output[:size], outputs)
