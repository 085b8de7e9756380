import keras

from keras_attention.finetune.freezing import freeze
from keras_attention.finetune.freezing import matching_layers
from keras_attention.finetune.freezing import unfreeze


@keras.saving.register_keras_serializable(package="keras_attention")
class GradualUnfreezing(keras.callbacks.Callback):
    """Unfreeze groups of layers from the top of a model, one group per stage.

    Howard and Ruder (2018) fine-tune a pretrained model by training the new
    head first, then unfreezing one more group of layers, from the output
    down, at each stage, so that the lower layers' general features are not
    destroyed by the large early gradients of a random head.

    At the start of training every group is frozen; group `i` is unfrozen at
    the start of epoch `unfreeze_epochs[i]`. Layers in no group keep their
    trainability (usually: the new head trains from the first epoch).

    The optimizer is built over every variable that will ever train, before
    the first step, so the state of the variables already training (Adam's
    moments, the step counter) carries on when a group joins; the training
    function is retraced at each change, so the change takes effect in
    compiled and XLA-compiled (`jit_compile=True`) training. Works with the
    TensorFlow and PyTorch backends, whose training loops read the trainable
    variables at each step; the JAX loop fixes them when `fit()` starts.

    Args:
        groups: list of patterns (each a str or a list of str, shell-style,
            on layer paths, see `keras_attention.finetune.freeze`), ordered
            from the top (output side) of the model down.
        unfreeze_epochs: list of int, one per group, non-decreasing: the
            epoch (0-based) at whose start the group is unfrozen. Defaults to
            `None`, which unfreezes group `i` at epoch `i + 1`.

    Example:

    >>> import keras, numpy as np
    >>> from keras_attention.finetune import GradualUnfreezing
    >>> model = keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(8, name="lower"), keras.layers.Dense(8, name="upper"),
    ...     keras.layers.Dense(1, name="head")], name="model")
    >>> model.compile(optimizer="adam", loss="mse")
    >>> callback = GradualUnfreezing(["*upper", "*lower"])
    >>> x, y = np.ones((8, 4)), np.zeros((8, 1))
    >>> _ = model.fit(x, y, epochs=3, verbose=0, callbacks=[callback])
    >>> callback.unfrozen_at
    {1: ['*upper'], 2: ['*lower']}

    References:
        - [Howard and Ruder, 2018](https://arxiv.org/abs/1801.06146)
    """

    def __init__(self, groups, unfreeze_epochs=None):
        super().__init__()
        if not groups:
            raise ValueError("`groups` must name at least one group of layers. Received: []")
        if unfreeze_epochs is None:
            unfreeze_epochs = list(range(1, len(groups) + 1))
        if len(unfreeze_epochs) != len(groups):
            raise ValueError(
                "`unfreeze_epochs` needs one epoch per group. Received "
                f"{len(unfreeze_epochs)} epochs for {len(groups)} groups."
            )
        if list(unfreeze_epochs) != sorted(unfreeze_epochs) or min(unfreeze_epochs) < 0:
            raise ValueError(
                "`unfreeze_epochs` must be non-negative and non-decreasing (groups "
                f"are ordered from the top down). Received: {list(unfreeze_epochs)}"
            )
        self.groups = list(groups)
        self.unfreeze_epochs = list(unfreeze_epochs)
        self.unfrozen_at = {}

    def on_train_begin(self, logs=None):
        if keras.backend.backend() == "jax":
            raise ValueError(
                "GradualUnfreezing needs the TensorFlow or PyTorch backend: the "
                "JAX training loop fixes the trainable variables when fit() starts. "
                "Set KERAS_BACKEND=tensorflow, or call fit() once per stage."
            )
        for patterns in self.groups:
            matching_layers(self.model, patterns)  # Fails early on a typo.
        # A LossScaleOptimizer (mixed_float16) wraps the one that holds the state.
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        if optimizer.use_ema:
            # Keras averages `model.trainable_weights` at the end of `fit()`,
            # a shorter list than the averages while a group is still frozen.
            raise ValueError(
                "GradualUnfreezing does not support an optimizer with `use_ema=True`: "
                "its moving averages cover every group, but the groups still frozen "
                "when training ends are not trainable. Compile with use_ema=False."
            )
        # Build the optimizer's state for every variable that will train, so
        # groups joining later find their slots and nothing resets.
        for patterns in self.groups:
            unfreeze(self.model, patterns)
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        # Keras keeps no public list of the variables an optimizer was built over.
        known = {id(variable) for variable in optimizer._trainable_variables}
        missing = [v.path for v in self.model.trainable_variables if id(v) not in known]
        if missing:
            # A built optimizer cannot take new variables: a fit() before this one
            # built it over fewer.
            raise ValueError(
                "The optimizer was built before GradualUnfreezing could add the groups' "
                f"variables to it (for example {missing[0]}): a fit() with those layers "
                "frozen came first. Compile the model again (a fresh optimizer) before "
                "this fit()."
            )
        for patterns in self.groups:
            freeze(self.model, patterns)
        self._num_unfrozen = 0
        self._retrace()

    def on_epoch_begin(self, epoch, logs=None):
        # Counting the groups due by now (rather than those starting exactly
        # now) also serves a run resumed at a later epoch.
        due = sum(start <= epoch for start in self.unfreeze_epochs)
        if due == self._num_unfrozen:
            return
        for patterns in self.groups[self._num_unfrozen : due]:
            unfreeze(self.model, patterns)
        self.unfrozen_at[epoch] = self.groups[self._num_unfrozen : due]
        self._num_unfrozen = due
        self._retrace()

    def _retrace(self):
        # The compiled step captured the trainable variables when it was
        # traced; trace it again so the new set takes effect.
        self.model.make_train_function(force=True)

    def get_config(self):
        return {"groups": self.groups, "unfreeze_epochs": self.unfreeze_epochs}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
