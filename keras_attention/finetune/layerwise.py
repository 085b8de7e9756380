"""Layer-wise learning-rate decay (discriminative fine-tuning)."""

import fnmatch

import keras

from keras_attention.finetune.scaled_schedule import ScaledSchedule


def layerwise_optimizer(optimizer, groups, decay):
    """Give deeper groups of layers geometrically smaller learning rates.

    Lower layers of a pretrained model hold general features that should
    move little; upper layers and the new head adapt most (Howard and Ruder
    2018; the "layer-wise learning-rate decay" of ELECTRA and BEiT). Group
    `i` (counted from the top, `0` first) learns at
    `learning_rate * decay ** (i + 1)`; variables in no group (usually the
    head) keep `optimizer`'s rate.

    Built on keras's `MultiOptimizer`, which routes each variable to one
    optimizer: every group gets a copy of `optimizer` with its rate scaled
    (a learning-rate schedule is scaled too).

    Args:
        optimizer: a `keras.optimizers.Optimizer`: the rate and settings of
            the top.
        groups: list of patterns (str or list of str, shell-style on layer
            paths), ordered from the top of the model down.
        decay: float in `(0, 1]`. The ratio between adjacent groups.

    Returns:
        A `keras.optimizers.MultiOptimizer`.

    Example:

    >>> import keras
    >>> from keras_attention.finetune import layerwise_optimizer
    >>> optimizer = layerwise_optimizer(
    ...     keras.optimizers.AdamW(1e-3), ["*encoder_1", "*encoder_0", "*embedding"], decay=0.5)
    >>> [float(opt.learning_rate) for opt in optimizer.optimizers]
    [0.0005, 0.00025, 0.000125, 0.001]

    References:
        - [Howard and Ruder, 2018](https://arxiv.org/abs/1801.06146)
        - [Clark et al., 2020](https://arxiv.org/abs/2003.10555)
    """
    if not 0 < decay <= 1:
        raise ValueError(f"`decay` must be in (0, 1]. Received: decay={decay!r}")
    if not groups:
        raise ValueError("`groups` must name at least one group of layers. Received: []")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise ValueError(
            "`optimizer` must be the optimizer itself, not a LossScaleOptimizer: pass "
            "its `inner_optimizer`. Under mixed_float16, `compile()` wraps the result "
            "in a LossScaleOptimizer."
        )
    optimizer_map = keras.optimizers.OptimizerMap(default_optimizer=optimizer)
    for depth, patterns in enumerate(groups, start=1):
        if isinstance(patterns, str):
            patterns = [patterns]
        # Variable paths are the layer path plus the variable's name.
        regex = "|".join(fnmatch.translate(pattern + "/*") for pattern in patterns)
        optimizer_map[regex] = _scaled_copy(optimizer, decay**depth)
    return keras.optimizers.MultiOptimizer(optimizer_map)


def _scaled_copy(optimizer, factor):
    config = optimizer.get_config()
    learning_rate = optimizer._learning_rate
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        config["learning_rate"] = ScaledSchedule(learning_rate, factor)
    else:
        config["learning_rate"] = float(config["learning_rate"]) * factor
    config["name"] = f"{optimizer.name}_x{factor:.4g}"
    copy = optimizer.__class__.from_config(config)
    # `exclude_from_weight_decay` is not in the config: without these, each
    # group would decay the biases and norms the top optimizer leaves alone.
    copy._exclude_from_weight_decay = set(getattr(optimizer, "_exclude_from_weight_decay", ()))
    copy._exclude_from_weight_decay_pattern = getattr(
        optimizer, "_exclude_from_weight_decay_pattern", None
    )
    return copy
