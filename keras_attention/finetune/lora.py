"""Low-rank adapters (LoRA) on the projections of attention layers."""

import os
import tempfile

import keras

from keras_attention.finetune.freezing import matching_layers
from keras_attention.finetune.freezing import unfreeze

DEFAULT_TARGETS = ("query", "value")
# keras's layers with `enable_lora`; `ReversibleEmbedding` is an `Embedding`.
ADAPTABLE = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)
# `enable_lora`'s initializers: one of the two adapters starts at zero, so outputs start unchanged.
PROJECTION_INITIALIZERS = {"a_initializer": "he_uniform", "b_initializer": "zeros"}  # keras's own
# A table's `A (V, r)` holds one row per token, and a token gets a gradient only where the
# fine-tuning data uses it. Drawn at random, every row the data never reaches would still move
# the table once `B` learns, by its random row times `B`: words seen only at prediction time
# would come out perturbed. So `A` starts at zero and `B` is drawn, as in the reference
# implementation (loralib's `Embedding`): unused tokens keep their pretrained rows.
EMBEDDING_INITIALIZERS = {"a_initializer": "zeros", "b_initializer": "random_normal"}


def apply_lora(model, rank, alpha=None, targets=DEFAULT_TARGETS, keep_trainable=()):
    """Add LoRA adapters to the matching projections and freeze the rest.

    Each matching `Dense` or `EinsumDense` layer (the `query` and `value`
    projections of every `MultiHeadAttention`, ours or keras's, by default)
    gets two trainable low-rank matrices `A (d_in, r)`, `B (r, d_out)`
    through keras's own `enable_lora`; its kernel becomes
    `W + (alpha / rank) * A @ B`, with `B` starting at zero so the model's
    outputs are unchanged at first. A matching `Embedding` layer (a
    `token_embedding`, named in `targets`) gets the same update of its table,
    `A (vocabulary, r)`, `B (r, D)`, with `A` starting at zero instead (so the
    tokens the fine-tuning data never uses keep their rows): the way to adapt
    a vocabulary that the pretraining corpus used differently from the task.
    Every other weight is frozen, except in the layers matching
    `keep_trainable` (a new task head, say).

    Args:
        model: a built `keras.Model`.
        rank: int. The rank `r` of the adapters.
        alpha: float. Scale of the adapters' update. Defaults to `None`,
            which means `rank` (a scale of 1).
        targets: str or tuple of str. Layer names, or shell-style patterns on layer
            paths (`"*encoder_1/*/query"`), of the projections (`Dense`,
            `EinsumDense`) and embedding tables (`Embedding`) to adapt.
            Defaults to `("query", "value")`.
        keep_trainable: tuple of str. Patterns of layers that keep training
            in full. Defaults to `()`.

    Returns:
        The list of adapted layers.

    Example:

    >>> import keras
    >>> from keras_attention.finetune import apply_lora
    >>> inputs = keras.Input((6, 16))
    >>> x = keras.layers.MultiHeadAttention(2, 8)(inputs, inputs)
    >>> outputs = keras.layers.Dense(3, name="head")(x)
    >>> model = keras.Model(inputs, outputs)
    >>> adapted = apply_lora(model, rank=4, keep_trainable=["head"])
    >>> sorted(layer.name for layer in adapted)
    ['query', 'value']
    >>> sorted(w.name for w in model.trainable_weights)
    ['bias', 'kernel', 'lora_kernel_a', 'lora_kernel_a', 'lora_kernel_b', 'lora_kernel_b']

    Merge the adapters (`merge_lora`) before saving: keras saves an adapted
    layer's merged kernel and zeroes its adapters on loading (see
    `restart_lora` to go on training such a model).

    References:
        - [Hu et al., 2021](https://arxiv.org/abs/2106.09685)
    """
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"`rank` must be a positive integer. Received: rank={rank!r}")
    if alpha is not None and not alpha > 0:
        # At zero, the adapters' update and their gradients vanish.
        raise ValueError(f"`alpha` must be positive (or None). Received: alpha={alpha!r}")
    if isinstance(targets, str):
        targets = (targets,)
    if not model.built:
        raise ValueError("`apply_lora` needs a built model: call it on data or build it first.")
    try:
        matched = matching_layers(model, list(targets))
    except ValueError:  # No layer at all: the same answer as no adaptable one, below.
        matched = []
    adapted = [layer for layer in matched if isinstance(layer, ADAPTABLE)]
    if not adapted:
        raise ValueError(
            f"No Dense, EinsumDense or Embedding layer matches targets={tuple(targets)}. "
            "Pass the names of projection layers, e.g. ('query', 'value')."
        )
    for layer in adapted:
        layer.enable_lora(rank, lora_alpha=alpha, **_initializers(layer))
    adapters = {
        id(variable)
        for layer in adapted
        for variable in layer.trainable_variables
        if variable.name.startswith("lora_")
    }
    kept_layers = matching_layers(model, list(keep_trainable)) if keep_trainable else []
    kept = {id(variable) for layer in kept_layers for variable in layer.trainable_variables}
    for variable in model.trainable_variables:
        if id(variable) not in adapters and id(variable) not in kept:
            variable.trainable = False
    # A frozen batch normalization must also stop updating its statistics, which it does
    # in training mode whatever its variables: a frozen layer runs in inference mode.
    kept_ids = {id(inner) for layer in kept_layers for inner in layer._flatten_layers(include_self=True)}
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and id(layer) not in kept_ids:
            layer.trainable = False
    return adapted


def restart_lora(model):
    """Re-draw the LoRA adapters that loading weights zeroed, so they train again.

    keras saves an adapted layer's kernel with the adapters merged in and, on
    loading, sets both adapters to zero: outputs are right, but with `A` and
    `B` both zero neither gets a gradient again, so a run resumed from a
    checkpoint (`keras.callbacks.BackupAndRestore`) would train only the
    layers kept trainable. Wherever both are zero, this draws again the one
    that `apply_lora` draws (`A` of a projection, `B` of an embedding table),
    leaving the other at zero: the outputs are unchanged and the adapters
    learn from the merged kernel on.

    Args:
        model: a `keras.Model` with adapters from `apply_lora`.

    Returns:
        The list of layers whose adapters were re-drawn.

    Example:

    >>> import keras, numpy as np
    >>> from keras_attention.finetune import apply_lora, restart_lora
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="query")(inputs))
    >>> _ = apply_lora(model, rank=2)
    >>> store = {}
    >>> model.layers[1].save_own_variables(store)
    >>> model.layers[1].load_own_variables(store)  # Adapters now zero.
    >>> [layer.name for layer in restart_lora(model)]
    ['query']
    """
    restarted = []
    for layer in model._flatten_layers(include_self=False):
        if not isinstance(layer, ADAPTABLE) or not layer.lora_enabled:
            continue
        # `lora_kernel_a`, `lora_kernel_b` (`lora_embeddings_*` for a table).
        a, b = sorted((v for v in layer.variables if v.name.startswith("lora_")), key=lambda v: v.name)
        if keras.ops.any(a != 0) or keras.ops.any(b != 0):
            continue
        initializers = _initializers(layer)
        for adapter, key in ((a, "a_initializer"), (b, "b_initializer")):
            if initializers[key] != "zeros":
                adapter.assign(keras.initializers.get(initializers[key])(adapter.shape, adapter.dtype))
        restarted.append(layer)
    return restarted


def merge_lora(model):
    """Return a copy of `model` with the LoRA adapters folded into its kernels.

    The copy has plain `Dense` / `EinsumDense` / `Embedding` layers whose
    kernels (tables) are `W + (alpha / rank) * A @ B`: the same outputs, no
    adapter weights, no extra matmuls. Use it to export or serve a LoRA-tuned
    model. The copy is compiled as `model` was, with a new optimizer.

    Args:
        model: a `keras.Model` with adapters from `apply_lora`.

    Returns:
        A new `keras.Model`, all of whose weights are trainable.

    Example:

    >>> import keras, numpy as np
    >>> from keras_attention.finetune import apply_lora, merge_lora
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="query")(inputs))
    >>> _ = apply_lora(model, rank=2)
    >>> merged = merge_lora(model)
    >>> [w.name for w in merged.weights]
    ['kernel', 'bias']
    """
    config = _without_lora(keras.saving.serialize_keras_object(model))
    merged = keras.saving.deserialize_keras_object(config)
    # Layer by layer: both models come from one config, so their layers pair up in order.
    # keras's LoRA-aware layers save `W + (alpha / rank) * A @ B` as their plain kernel or
    # table, so a round trip of each layer's own variables is the merge. Not `save_weights`:
    # it also carries the optimizer's state, whose slots fit the adapters and not the merged
    # weights. State kept as assets (a tokenizer's vocabulary) is in neither the config nor
    # the variables, and is copied the same way.
    with tempfile.TemporaryDirectory() as directory:
        pairs = zip(model._flatten_layers(include_self=True), merged._flatten_layers(include_self=True))
        for index, (source, target) in enumerate(pairs):
            store = {}
            source.save_own_variables(store)
            target.load_own_variables(store)
            if hasattr(source, "save_assets") and hasattr(target, "load_assets"):
                assets = os.path.join(directory, f"assets_{index}")
                os.makedirs(assets)
                source.save_assets(assets)
                target.load_assets(assets)
    unfreeze(merged)  # The frozen batch normalizations too (`trainable = True` stops at the model).
    return merged


def _initializers(layer):
    if isinstance(layer, keras.layers.Embedding):
        return EMBEDDING_INITIALIZERS
    return PROJECTION_INITIALIZERS


def _without_lora(config):
    if isinstance(config, dict):
        return {
            key: _without_lora(value)
            for key, value in config.items()
            if key not in ("lora_rank", "lora_alpha")
        }
    if isinstance(config, list):
        return [_without_lora(value) for value in config]
    return config
