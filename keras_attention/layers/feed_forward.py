"""The position-wise feed-forward block of a Transformer."""

import keras

from keras_attention.layers.layer_utils import clone_initializer


@keras.saving.register_keras_serializable(package="keras_attention")
class FeedForward(keras.layers.Layer):
    """Position-wise feed-forward network: dense, activation, dense, dropout.

    Maps each position `(..., dim)` through `intermediate_dim` units with an
    activation and back to `output_dim` (by default `dim`), then applies
    dropout, as the feed-forward half of a Transformer block
    (Vaswani et al., 2017). Residual connections and normalization are the
    caller's, so the block serves pre- and post-norm layouts alike. Keras
    masks pass through unchanged.

    Args:
        intermediate_dim: int. Units of the hidden layer.
        output_dim: int. Units of the output. Defaults to `None`, which means
            the last dimension of the input.
        activation: str or callable. Activation of the hidden layer. Defaults
            to `"relu"`.
        dropout: float. Dropout rate on the output. Defaults to `0.0`.
        use_bias: bool. Whether the two dense layers have biases. Defaults to
            `True`.
        kernel_initializer: initializer of the kernels. Defaults to
            `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: tensor `(..., dim)`.
        training: bool. Apply dropout. Defaults to `None`.

    Returns:
        A tensor `(..., output_dim)`.

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers import FeedForward
    >>> layer = FeedForward(intermediate_dim=32, activation="gelu")
    >>> tuple(layer(np.random.rand(2, 5, 8).astype("float32")).shape)
    (2, 5, 8)

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(
        self,
        intermediate_dim,
        output_dim=None,
        activation="relu",
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value, allow_none in (
            ("intermediate_dim", intermediate_dim, False),
            ("output_dim", output_dim, True),
        ):
            if value is None and allow_none:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"`{name}` must be a positive integer"
                    f"{' or None' if allow_none else ''}. Received: {name}={value!r}"
                )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}")
        self.intermediate_dim = intermediate_dim
        self.output_dim = output_dim
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, inputs_shape):
        output_dim = self.output_dim or inputs_shape[-1]
        self._intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="intermediate_dense",
        )
        self._intermediate_dense.build(inputs_shape)
        self._output_dense = keras.layers.Dense(
            output_dim,
            use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self._output_dense.build(tuple(inputs_shape[:-1]) + (self.intermediate_dim,))
        self._dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout_layer"
        )
        self._dropout_layer.build(tuple(inputs_shape[:-1]) + (output_dim,))

    def call(self, inputs, training=None):
        x = self._intermediate_dense(inputs)  # [..., intermediate_dim]
        x = self._output_dense(x)  # [..., output_dim]
        return self._dropout_layer(x, training=training)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1]) + (self.output_dim or inputs_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "output_dim": self.output_dim,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
