"""Where and in what precision a training run computes: `--precision` and `--distribute`.

`training_runtime(precision, distribute)` is entered once, by `applications.cli`,
around the whole of a `train` or `finetune` run, so every application builds,
loads, compiles and fits its model under the dtype policy and inside the
distribution scope without code of its own; on exit both are restored. The
Python form is the same context manager:

    with training_runtime("mixed_bfloat16", "mirrored"):
        recipe.train(...)

`runtime_settings()` is what each application records in `settings.json`.
"""

import contextlib
import json
import os

import keras

from applications.common.arguments import DISTRIBUTIONS
from applications.common.errors import UserError

_current = {"distribute": "none", "replicas": 1}


def runtime_settings():
    """The precision and distribution of the run in progress, for `settings.json`."""
    return {"precision": keras.config.dtype_policy().name, **_current}


@contextlib.contextmanager
def training_runtime(precision="float32", distribute="none", batch_size=None):
    """Set the dtype policy and enter the distribution scope; restore both on exit.

    Args:
        precision: str. `"auto"`, `"float32"`, `"mixed_float16"` or
            `"mixed_bfloat16"` (see `keras_attention.precision.set_precision`).
        distribute: str. `"none"`; `"mirrored"`: synchronous data parallelism
            over the devices of this machine (`tf.distribute.MirroredStrategy`,
            or `keras.distribution.DataParallel` under JAX); `"multi-worker"`:
            across the machines of `TF_CONFIG`
            (`tf.distribute.MultiWorkerMirroredStrategy`); `"auto"`: mirrored
            when there is more than one device, else none.
        batch_size: int. `--batch-size`, the global batch, or `None` (the
            recipe's). Refused when smaller than the replicas.

    Yields:
        The name of the dtype policy set.
    """
    from keras_attention.precision import set_precision

    if distribute not in DISTRIBUTIONS:
        raise UserError(f"Unknown --distribute {distribute!r}. Expected one of {', '.join(DISTRIBUTIONS)}.")
    # The strategy first: MultiWorkerMirroredStrategy must exist before TensorFlow's runtime starts.
    strategy_scope, mode, replicas = _distribution(distribute)
    if batch_size is not None and batch_size < replicas:
        # `fit` cuts each batch to a multiple of the replicas: none would be left to train on.
        shown = distribute if distribute == mode else f"{distribute} ({mode})"
        raise UserError(
            f"--batch-size {batch_size} is smaller than the {replicas} replicas of --distribute {shown}: "
            f"use a batch size of at least {replicas} (a multiple of {replicas})."
        )
    previous_policy = keras.config.dtype_policy()
    try:
        try:
            policy = set_precision(precision)
        except ValueError as error:
            raise UserError(f"--precision: {error}") from None
        _current.update(distribute=mode, replicas=replicas)
        if mode != "none":
            print(f"Training on {replicas} replicas ({mode}); --batch-size is the global batch.")
        with strategy_scope:
            yield policy
    finally:
        keras.config.set_dtype_policy(previous_policy)
        _current.update(distribute="none", replicas=1)


def _distribution(mode):
    """(scope, mode actually used, replicas) for `--distribute mode` on this backend."""
    backend = keras.backend.backend()
    if mode == "none":
        return contextlib.nullcontext(), "none", 1
    if backend == "tensorflow":
        return _tensorflow_distribution(mode)
    if backend == "jax":
        if mode == "multi-worker":
            raise UserError("--distribute multi-worker needs the TensorFlow backend (KERAS_BACKEND=tensorflow).")
        devices = keras.distribution.list_devices()
        if len(devices) < 2:
            if mode == "auto":
                return contextlib.nullcontext(), "none", 1
            raise UserError(f"--distribute mirrored needs more than one device; JAX sees {devices}.")
        return keras.distribution.DataParallel(devices=devices).scope(), "mirrored", len(devices)
    if mode == "auto":
        return contextlib.nullcontext(), "none", 1
    raise UserError(f"--distribute {mode} needs the TensorFlow or JAX backend; this is {backend}.")


def _tensorflow_distribution(mode):
    import tensorflow as tf  # Only the applications' training plumbing touches TensorFlow.

    if mode == "multi-worker":
        config = os.environ.get("TF_CONFIG")
        try:
            workers = len(json.loads(config)["cluster"]["worker"]) if config else 0
        except (ValueError, KeyError, TypeError):
            raise UserError(f"TF_CONFIG is not valid JSON with cluster.worker: {config!r}") from None
        if workers < 1:
            raise UserError(
                "--distribute multi-worker needs TF_CONFIG naming the workers, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}.'
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _mean_of_scalars_across_workers()
        return strategy.scope(), "multi-worker", strategy.num_replicas_in_sync
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        if mode == "auto":
            return contextlib.nullcontext(), "none", 1
        raise UserError(
            f"--distribute mirrored needs more than one device; TensorFlow sees {[d.name for d in devices]}."
        )
    strategy = tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    return strategy.scope(), "mirrored", strategy.num_replicas_in_sync


def _mean_of_scalars_across_workers():
    """Let Keras's TensorFlow trainer average scalar logs across workers.

    Under MultiWorkerMirroredStrategy, keras 3.15 reduces every output of a training
    step with `strategy.reduce("MEAN", v, axis=0)`, which fails on the scalar loss and
    metrics ("Invalid reduction dimension 0 for input with 0 dimensions",
    tensorflow/tensorflow#72388). Scalars are reduced with `axis=None` instead. This is
    the one private Keras import of the applications; the trainer looks the function up
    by name at each trace, so replacing it in its module takes effect.
    """
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "scalars_fixed", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return keras.tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=0 if len(v.shape) else None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.scalars_fixed = True
    trainer.reduce_per_replica = reduce_per_replica
