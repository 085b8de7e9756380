"""The sum of a token embedding and a learned position embedding."""

import numbers

import keras
from keras import ops

from keras_attention.layers.layer_utils import clone_initializer
from keras_attention.layers.position_embedding import PositionEmbedding


@keras.saving.register_keras_serializable(package="keras_attention")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus learned position embedding: the input of a Transformer.

    Maps token ids `(B, T)` to `token_embedding(ids) + position_embedding`,
    `(B, T, embedding_dim)`. The token embedding is a
    `keras.layers.ReversibleEmbedding`, exposed as the `token_embedding`
    attribute, so an output layer can reuse its table (tied input and output
    embeddings): `layer.token_embedding(hidden_states, reverse=True)` gives
    `(B, T, vocabulary_size)` logits. The position embedding is a
    `keras_attention.layers.PositionEmbedding` (`position_embedding`). The
    arguments and weights, in order, are those of
    `keras_hub.layers.TokenAndPositionEmbedding`, so `set_weights` copies a
    trained keras-hub layer into this one.

    With `mask_zero=True`, id 0 is padding: the output carries the implicit
    Keras mask `ids != 0`, `(B, T)`, which masking-aware layers downstream
    (our encoder and decoder blocks, poolings) read as their padding mask.

    Args:
        vocabulary_size: int. The number of token ids.
        sequence_length: int. The number of positions, the longest input the
            layer serves.
        embedding_dim: int. The size of each embedding vector, `D`.
        tie_weights: bool. Whether `token_embedding(x, reverse=True)` uses the
            transposed token table (True) or a separate output table.
            Defaults to `True`.
        embeddings_initializer: str or `keras.initializers.Initializer`.
            Initializer of both tables. Defaults to `"uniform"`.
        mask_zero: bool. Whether id 0 is padding, masked downstream.
            Defaults to `False`.
        **kwargs: other arguments of `keras.layers.Layer`, such as `name` and
            `dtype`.

    Call arguments:
        inputs: integer token ids, `(B, T)`, with `T <= sequence_length`.
        start_index: int or scalar integer tensor. Position of the first of
            the `T` tokens, for cached decoding where one step sees only the
            new tokens. Defaults to `0`.

    Returns:
        The embeddings, `(B, T, embedding_dim)`, in the compute dtype.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from keras_attention.layers import TokenAndPositionEmbedding
    >>> layer = TokenAndPositionEmbedding(
    ...     vocabulary_size=100, sequence_length=16, embedding_dim=8, mask_zero=True)
    >>> token_ids = np.array([[5, 7, 2, 0, 0]])
    >>> embeddings = layer(token_ids)
    >>> tuple(embeddings.shape)
    (1, 5, 8)
    >>> keras.ops.convert_to_numpy(layer.compute_mask(token_ids)).tolist()
    [[True, True, True, False, False]]
    >>> # Tied output projection: logits over the vocabulary.
    >>> tuple(layer.token_embedding(embeddings, reverse=True).shape)
    (1, 5, 100)

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
        - [Press and Wolf, 2017](https://arxiv.org/abs/1608.05859) (tied
          embeddings)
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length,
        embedding_dim,
        tie_weights=True,
        embeddings_initializer="uniform",
        mask_zero=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("sequence_length", sequence_length),
            ("embedding_dim", embedding_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        self.vocabulary_size = int(vocabulary_size)
        self.sequence_length = int(sequence_length)
        self.embedding_dim = int(embedding_dim)
        self.tie_weights = bool(tie_weights)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = True

        self.token_embedding = keras.layers.ReversibleEmbedding(
            self.vocabulary_size,
            self.embedding_dim,
            tie_weights=self.tie_weights,
            embeddings_initializer=clone_initializer(self.embeddings_initializer),
            mask_zero=self.mask_zero,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.position_embedding = PositionEmbedding(
            sequence_length=self.sequence_length,
            initializer=clone_initializer(self.embeddings_initializer),
            dtype=self.dtype_policy,
            name="position_embedding",
        )

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            raise ValueError(
                "TokenAndPositionEmbedding expects integer token ids of shape (B, T). "
                f"Received: input_shape={input_shape}"
            )
        self.token_embedding.build(input_shape)
        self.position_embedding.build(input_shape + (self.embedding_dim,))
        self.built = True

    def call(self, inputs, start_index=0):
        token_embeddings = self.token_embedding(inputs)  # [B, T, D]
        position_embeddings = self.position_embedding(token_embeddings, start_index=start_index)  # [B, T, D]
        return token_embeddings + position_embeddings

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)  # [B, T]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "embedding_dim": self.embedding_dim,
                "tie_weights": self.tie_weights,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "mask_zero": self.mask_zero,
            }
        )
        return config
