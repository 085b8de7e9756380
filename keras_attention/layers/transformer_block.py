"""What `TransformerEncoder` and `TransformerDecoder` share (not public).

Both take the same constructor arguments (those of keras_hub's blocks), make
their sublayers the same way, wrap every sublayer in the same residual
connection (pre- or post-norm) and end with the same feed-forward block. The
two public blocks subclass `TransformerBlock` and keep their own `build`, so
each builds its sublayers in keras_hub's order (its `get_weights()` order).
"""

import keras

from keras_attention.layers.layer_utils import check_block_arguments
from keras_attention.layers.layer_utils import clone_initializer
from keras_attention.layers.multi_head_attention import MultiHeadAttention


class TransformerBlock(keras.layers.Layer):
    """Base of the Transformer blocks: arguments, sublayer factories, residuals."""

    def __init__(
        self,
        intermediate_dim,
        num_heads,
        dropout=0,
        activation="relu",
        layer_norm_epsilon=1e-05,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        normalize_first=False,
        num_key_value_heads=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_block_arguments(intermediate_dim, num_heads, dropout, num_key_value_heads)
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.normalize_first = normalize_first
        self.num_key_value_heads = num_key_value_heads
        self.supports_masking = True

    # === Sublayers (built at once, named as keras_hub's so weights carry over) ===

    def _make_attention(self, name, key_dim):
        return MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=key_dim,
            dropout=self.dropout,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            num_key_value_heads=self.num_key_value_heads,
            dtype=self.dtype_policy,
            name=name,
        )

    def _make_layer_norm(self, name, shape):
        layer = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )
        layer.build(shape)
        return layer

    def _make_dropout(self, name, shape):
        layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=name)
        layer.build(shape)
        return layer

    def _make_dense(self, units, name, inputs_shape, activation=None):
        layer = keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )
        layer.build(inputs_shape)
        return layer

    def _build_feedforward_denses(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        self._feedforward_intermediate_dense = self._make_dense(
            self.intermediate_dim, "feedforward_intermediate_dense", inputs_shape, self.activation
        )
        self._feedforward_output_dense = self._make_dense(
            hidden_dim,
            "feedforward_output_dense",
            tuple(inputs_shape[:-1]) + (self.intermediate_dim,),
        )

    # === Residual connections ===

    def _residual_input(self, x, layer_norm):
        """What a sublayer sees: `x`, normalized first under pre-norm."""
        return layer_norm(x) if self.normalize_first else x

    def _residual_output(self, x, residual, layer_norm, dropout, training):
        """Dropout, add the residual, and normalize after under post-norm."""
        x = dropout(x, training=training) + residual
        return x if self.normalize_first else layer_norm(x)

    def _feedforward_block(self, x, training):
        residual = x
        x = self._residual_input(x, self._feedforward_layer_norm)
        x = self._feedforward_intermediate_dense(x)  # [B, T, intermediate_dim]
        x = self._feedforward_output_dense(x)  # [B, T, hidden_dim]
        return self._residual_output(
            x, residual, self._feedforward_layer_norm, self._feedforward_dropout, training
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "normalize_first": self.normalize_first,
                "num_key_value_heads": self.num_key_value_heads,
            }
        )
        return config
