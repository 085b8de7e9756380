"""Freeze and unfreeze parts of a model by layer-path pattern."""

import fnmatch


def matching_layers(model, patterns):
    """Return the sublayers of `model` whose path matches one of `patterns`.

    A layer's path is its name scope inside the model, for example
    `"classifier/encoder_1/self_attention"`. Patterns are shell-style
    (`fnmatch`): `"*encoder_1*"`, `"*/query"`. A pattern may also be a
    plain layer name.

    Args:
        model: a `keras.Model` or `keras.layers.Layer`.
        patterns: str or list of str.

    Returns:
        A list of layers, outermost first, without duplicates.

    Example:

    >>> import keras
    >>> from keras_attention.finetune import matching_layers
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3, name="body"),
    ...      keras.layers.Dense(2, name="head")], name="model")
    >>> [layer.name for layer in matching_layers(model, "*head")]
    ['head']
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    layers = [layer for layer in model._flatten_layers(include_self=False) if layer.path]
    matched = [
        layer
        for layer in layers
        if any(
            fnmatch.fnmatchcase(layer.path, pattern) or layer.name == pattern
            for pattern in patterns
        )
    ]
    if not matched:
        known = ", ".join(layer.path for layer in layers[:20])
        raise ValueError(
            f"No layer matches {patterns}. Layer paths look like: {known}"
        )
    return matched


def freeze(model, patterns="*"):
    """Make the layers matching `patterns` non-trainable.

    Args:
        model: a `keras.Model`.
        patterns: str or list of str, shell-style patterns on layer paths.
            Defaults to `"*"` (every layer).

    Returns:
        The list of layers frozen.

    Example:

    >>> import keras
    >>> from keras_attention.finetune import freeze
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3, name="body"),
    ...      keras.layers.Dense(2, name="head")], name="model")
    >>> _ = freeze(model, "*body")
    >>> [w.path for w in model.trainable_weights]
    ['model/head/kernel', 'model/head/bias']
    """
    layers = matching_layers(model, patterns)
    for layer in layers:
        layer.trainable = False
    return layers


def unfreeze(model, patterns="*"):
    """Make the layers matching `patterns` trainable again.

    Args:
        model: a `keras.Model`.
        patterns: str or list of str, shell-style patterns on layer paths.
            Defaults to `"*"` (every layer).

    Returns:
        The list of layers unfrozen.

    Example:

    >>> import keras
    >>> from keras_attention.finetune import freeze, unfreeze
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3, name="body")], name="model")
    >>> _ = freeze(model)
    >>> _ = unfreeze(model, "*body")
    >>> len(model.trainable_weights)
    2
    """
    targets = matching_layers(model, patterns)
    inside_targets = {
        id(inner) for target in targets for inner in target._flatten_layers(include_self=True)
    }
    # `trainable=True` on a container propagates to every sublayer, and a
    # frozen container hides its sublayers' weights: unfreeze the whole model,
    # then freeze again what was frozen and is neither a target, inside one,
    # nor a container of one.
    refreeze = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if not layer.trainable
        and id(layer) not in inside_targets
        and not any(_contains(layer, target) for target in targets)
    ]
    for layer in model._flatten_layers(include_self=True):
        layer.trainable = True
    for layer in refreeze:
        layer.trainable = False
    return targets


def _contains(container, layer):
    return container is not layer and any(
        inner is layer for inner in container._flatten_layers(include_self=False)
    )
