"""The Transformer encoder block."""

import keras

from keras_attention.layers.layer_utils import head_size
from keras_attention.layers.layer_utils import validate_shape
from keras_attention.layers.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="keras_attention")
class TransformerEncoder(TransformerBlock):
    """Transformer encoder block: self-attention and feed-forward, with residuals.

    The encoder layer of Vaswani et al. (2017), with the arguments, the
    weights (in the same order) and the results of
    `keras_hub.layers.TransformerEncoder`, so that
    `layer.set_weights(keras_hub_layer.get_weights())` gives the same outputs.
    Stack several to build an encoder. Post-norm by default (BERT); pre-norm
    with `normalize_first=True` (GPT-2, ViT). `num_key_value_heads` gives
    grouped-query attention.

    Masks: `padding_mask` (True for real tokens) masks the padded keys and
    gives padded queries zero attention; `attention_mask` is merged with it.
    Without an explicit `padding_mask` the Keras mask of `inputs` (for
    example from `keras.layers.Embedding(mask_zero=True)`) is used; an
    explicit mask wins.

    Args:
        intermediate_dim: int. Hidden size of the feed-forward network.
        num_heads: int. Number of attention heads; the head size is
            `hidden_dim // num_heads`.
        dropout: float. Dropout rate of the attention scores, the attention
            output and the feed-forward output. Defaults to `0`.
        activation: str or callable. Activation of the feed-forward network.
            Defaults to `"relu"`.
        layer_norm_epsilon: float. Epsilon of the layer normalizations.
            Defaults to `1e-5`.
        kernel_initializer: initializer of the dense and attention kernels.
            Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the dense and attention biases.
            Defaults to `"zeros"`.
        normalize_first: bool. Normalize the inputs of the attention and of
            the feed-forward network (pre-norm) rather than their outputs
            (post-norm). Defaults to `False`.
        num_key_value_heads: int. Key/value heads of the attention, dividing
            `num_heads`. Defaults to `None`, which means `num_heads`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: tensor `(B, T, hidden_dim)`.
        padding_mask: optional boolean `(B, T)`, True for real tokens.
            Defaults to the Keras mask of `inputs`.
        attention_mask: optional boolean `(B, T, T)`, True where token `t`
            may attend token `s`.
        training: bool. Apply dropout. Defaults to `None`.
        return_attention_scores: bool. Also return the attention scores
            `(B, num_heads, T, T)`. Defaults to `False`.

    Returns:
        The outputs `(B, T, hidden_dim)`, or `(outputs, attention_scores)`
        with `return_attention_scores=True`.

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers import TransformerEncoder
    >>> encoder = TransformerEncoder(intermediate_dim=32, num_heads=4)
    >>> inputs = np.random.rand(2, 5, 16).astype("float32")
    >>> padding_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    >>> outputs, scores = encoder(inputs, padding_mask=padding_mask,
    ...                           return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((2, 5, 16), (2, 4, 5, 5))

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
        - [Xiong et al., 2020](https://arxiv.org/abs/2002.04745) (pre-norm)
    """

    def build(self, inputs_shape):
        key_dim = head_size(inputs_shape[-1], self.num_heads)
        # Sublayers, attributes and names follow keras_hub's TransformerEncoder,
        # so its get_weights() order and its weight files carry over.
        self._self_attention_layer = self._make_attention("self_attention_layer", key_dim)
        self._self_attention_layer.build(inputs_shape, inputs_shape)
        self._self_attention_layer_norm = self._make_layer_norm("self_attention_layer_norm", inputs_shape)
        self._self_attention_dropout = self._make_dropout("self_attention_dropout", inputs_shape)
        self._feedforward_layer_norm = self._make_layer_norm("feedforward_layer_norm", inputs_shape)
        self._build_feedforward_denses(inputs_shape)
        self._feedforward_dropout = self._make_dropout("feedforward_dropout", inputs_shape)

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        batch_size, length = inputs.shape[0], inputs.shape[1]
        padding_mask = validate_shape("padding_mask", padding_mask, (batch_size, length), "(B, T)")
        attention_mask = validate_shape(
            "attention_mask", attention_mask, (batch_size, length, length), "(B, T, T)"
        )

        # Self-attention block. With `padding_mask=None` the attention layer
        # picks up the Keras mask of `x` itself (see layer_utils).
        x = self._residual_input(inputs, self._self_attention_layer_norm)
        x = self._self_attention_layer(
            x,
            x,
            query_mask=padding_mask,
            value_mask=padding_mask,
            attention_mask=attention_mask,
            return_attention_scores=return_attention_scores,
            training=training,
        )  # [B, T, hidden_dim] (and scores [B, N, T, T])
        if return_attention_scores:
            x, attention_scores = x
        x = self._residual_output(
            x, inputs, self._self_attention_layer_norm, self._self_attention_dropout, training
        )

        x = self._feedforward_block(x, training)
        if return_attention_scores:
            return x, attention_scores
        return x

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def compute_output_spec(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
    ):
        outputs = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        batch_size, length = inputs.shape[0], inputs.shape[1]
        scores = keras.KerasTensor(
            (batch_size, self.num_heads, length, length), dtype=self.compute_dtype
        )
        return outputs, scores
