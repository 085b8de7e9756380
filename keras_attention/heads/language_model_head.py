"""A language-model head: hidden states to vocabulary logits, optionally tied."""

import keras
from keras import ops

from keras_attention.heads.head_utils import standardize_head_dtype


@keras.saving.register_keras_serializable(package="keras_attention")
class LanguageModelHead(keras.layers.Layer):
    """Project hidden states `(..., D)` to vocabulary logits `(..., V)`.

    The output layer of decoders and masked language models. Without
    `embedding` it owns a `(D, V)` kernel. With `embedding` it ties its
    weights to that embedding (Press and Wolf, 2017): the logits are
    `hidden . E^T (+ bias)` with `E` the `(V, D)` embedding matrix, so
    the input and output embeddings are one variable, trained by both ends.

    `embedding` is a `keras.layers.Embedding` (which includes
    `keras.layers.ReversibleEmbedding` and `keras_hub.layers.ReversibleEmbedding`,
    whose `embeddings` is used, tied or not), or a layer with a
    `token_embedding` attribute that is one (`TokenAndPositionEmbedding`,
    keras_hub's and ours). How the tie survives saving: `get_config` holds the
    embedding's serialized config, and Keras's `.keras` saving records objects
    seen twice. When the embedding layer and the head are in the same saved
    model, reloading gives one embedding layer, used by both (the tie holds
    and training keeps it). `LanguageModelHead.from_config` on its own, outside
    a model, builds a new embedding layer.

    The head computes in `head_dtype`, float32 by default, so logits and the
    loss stay in float32 under mixed precision. A `head_dtype` that is not
    `None` is the layer's dtype policy: it overrides `dtype` and the global
    policy.

    Args:
        vocabulary_size: int. `V`, the number of logits.
        embedding: layer. An embedding of `vocabulary_size` rows to tie the
            output weights to. Defaults to `None` (an untied kernel).
        use_bias: bool. Add a learned `(V,)` bias to the logits. Defaults to
            `True`.
        kernel_initializer: str or initializer. Initializer of the untied
            kernel. Defaults to `"glorot_uniform"`.
        head_dtype: str or `keras.DTypePolicy`. Dtype policy of the head's
            weights, computations and outputs. Defaults to `"float32"`;
            `None` follows `dtype` (or the global policy).
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: tensor `(..., D)`, e.g. `(B, T, D)`. A Keras mask on it (from
            an embedding with `mask_zero=True`) passes on to the logits, so a
            compiled loss leaves the padded positions out.

    Returns:
        The logits `(..., V)`, in the compute dtype of `head_dtype`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from keras_attention.heads import LanguageModelHead
    >>> token_ids = keras.Input(shape=(None,), dtype="int32")
    >>> embedding = keras.layers.Embedding(100, 16)
    >>> hidden_states = keras.layers.Dense(16)(embedding(token_ids))
    >>> logits = LanguageModelHead(100, embedding=embedding)(hidden_states)
    >>> model = keras.Model(token_ids, logits)
    >>> tuple(model.predict(np.array([[1, 2, 3]]), verbose=0).shape)
    (1, 3, 100)
    >>> model.layers[-1].embedding is embedding
    True

    References:
        - [Press and Wolf, 2017](https://arxiv.org/abs/1608.05859)
    """

    def __init__(
        self,
        vocabulary_size,
        embedding=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        head_dtype="float32",
        **kwargs,
    ):
        head_dtype = standardize_head_dtype(head_dtype)
        if head_dtype is not None:
            kwargs["dtype"] = head_dtype
        super().__init__(**kwargs)
        if (
            isinstance(vocabulary_size, bool)
            or not isinstance(vocabulary_size, int)
            or vocabulary_size < 1
        ):
            raise ValueError(
                "`vocabulary_size` must be a positive integer. "
                f"Received: vocabulary_size={vocabulary_size!r}"
            )
        if embedding is not None:
            input_dim = tied_embedding(embedding).input_dim
            if input_dim != vocabulary_size:
                raise ValueError(
                    "The tied embedding must have `vocabulary_size` rows. "
                    f"Received: vocabulary_size={vocabulary_size}, an embedding "
                    f"of {input_dim} rows ({embedding.name!r})."
                )
        self.vocabulary_size = vocabulary_size
        self.embedding = embedding
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.head_dtype = head_dtype
        # Per position, like `Dense`: a padding mask passes through to the loss.
        self.supports_masking = True

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim is None:
            raise ValueError(
                "LanguageModelHead needs a known hidden size D. Received: "
                f"inputs.shape={tuple(input_shape)}"
            )
        if self.embedding is None:
            self.output_dense = keras.layers.Dense(
                self.vocabulary_size,
                use_bias=self.use_bias,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="output_dense",
            )
            self.output_dense.build(input_shape)
            return
        token_embedding = tied_embedding(self.embedding)
        if not token_embedding.built:
            token_embedding.build()
        if token_embedding.output_dim != hidden_dim:
            raise ValueError(
                "The hidden size must equal the tied embedding's size. Received: "
                f"inputs.shape={tuple(input_shape)}, an embedding of size "
                f"{token_embedding.output_dim} ({self.embedding.name!r})."
            )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.vocabulary_size,), initializer="zeros"
            )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)  # [..., D]
        if self.embedding is None:
            return self.output_dense(x)  # [..., V]
        kernel = ops.cast(tied_embedding(self.embedding).embeddings, self.compute_dtype)  # [V, D]
        logits = ops.matmul(x, ops.transpose(kernel))  # [..., V]
        if self.bias is not None:
            logits = logits + ops.cast(self.bias, self.compute_dtype)
        return logits

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.vocabulary_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                # Serialized inside a `.keras` save, an embedding that the
                # model also holds is recorded once and shared on reload.
                "embedding": (
                    None
                    if self.embedding is None
                    else keras.saving.serialize_keras_object(self.embedding)
                ),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "head_dtype": self.head_dtype,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("embedding") is not None:
            config["embedding"] = keras.saving.deserialize_keras_object(config["embedding"])
        return super().from_config(config)


def tied_embedding(layer):
    """Return the `keras.layers.Embedding` whose matrix `layer` ties to."""
    embedding = getattr(layer, "token_embedding", layer)
    if not isinstance(embedding, keras.layers.Embedding):
        raise ValueError(
            "`embedding` must be a keras.layers.Embedding (such as "
            "ReversibleEmbedding) or a layer with a `token_embedding` attribute "
            f"that is one. Received: {layer!r}"
        )
    return embedding
