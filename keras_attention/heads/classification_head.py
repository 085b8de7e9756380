"""A classification head: pool a sequence, then project to class logits."""

import keras
from keras import ops

from keras_attention.heads.head_utils import standardize_head_dtype
from keras_attention.layers.attention_pooling import AttentionPooling
from keras_attention.layers.layer_utils import validate_shape
from keras_attention.ops.masks import mask_fill_value

POOLINGS = ("cls", "mean", "max", "attention")


@keras.saving.register_keras_serializable(package="keras_attention")
class ClassificationHead(keras.layers.Layer):
    """Pool a sequence of hidden states `(B, T, D)` and predict `num_classes`.

    The head of every classifier of the library (text, image, audio): pool the
    sequence into one vector, optionally pass it through a `tanh` layer of
    size `intermediate_dim` (BERT's pooler, ViT's pre-logits), apply dropout,
    and project to the classes. Poolings:
    - `"cls"`: the first position (a class token, as BERT and ViT);
    - `"mean"`: the mean over real positions;
    - `"max"`: the feature-wise maximum over real positions;
    - `"attention"`: `AttentionPooling`, a learned query over real positions.
    The `"mean"`, `"max"` and `"attention"` poolings ignore padded positions,
    so padding changes nothing; a sequence with no real position pools to
    zeros.

    The head computes in `head_dtype`, float32 by default, so that under a
    mixed-precision policy the logits, the softmax and the loss stay in
    float32 while the rest of the model runs in float16 or bfloat16. A
    `head_dtype` that is not `None` is the layer's dtype policy: it overrides
    `dtype` and the global policy.

    Args:
        num_classes: int. Number of classes.
        pooling: str. One of `"cls"`, `"mean"`, `"max"`, `"attention"`.
            Defaults to `"cls"`.
        intermediate_dim: int. Size of a `tanh` layer between the pooling and
            the output. Defaults to `None` (no such layer).
        activation: str or callable. Activation of the output, e.g.
            `"softmax"`. Defaults to `None`, logits (the usual choice, with a
            `from_logits=True` loss).
        dropout: float. Dropout rate before the output projection. Defaults
            to `0.0`.
        head_dtype: str or `keras.DTypePolicy`. Dtype policy of the head's
            weights, computations and outputs. Defaults to `"float32"`;
            `None` follows `dtype` (or the global policy).
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: tensor `(B, T, D)`.
        padding_mask: optional boolean `(B, T)`, True for real positions.
            Defaults to the Keras mask of `inputs`.
        training: bool. Apply dropout. Defaults to `None`.

    Returns:
        A tensor `(B, num_classes)` in the compute dtype of `head_dtype`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from keras_attention.heads import ClassificationHead
    >>> hidden_states = np.random.rand(2, 5, 8).astype("float32")
    >>> padding_mask = np.array([[True] * 5, [True] * 3 + [False] * 2])
    >>> head = ClassificationHead(num_classes=3, pooling="mean")
    >>> logits = head(hidden_states, padding_mask=padding_mask)
    >>> tuple(logits.shape), keras.backend.standardize_dtype(logits.dtype)
    ((2, 3), 'float32')
    """

    def __init__(
        self,
        num_classes,
        pooling="cls",
        intermediate_dim=None,
        activation=None,
        dropout=0.0,
        head_dtype="float32",
        **kwargs,
    ):
        head_dtype = standardize_head_dtype(head_dtype)
        if head_dtype is not None:
            kwargs["dtype"] = head_dtype
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}"
            )
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling: {pooling!r}. Expected one of {POOLINGS}.")
        if intermediate_dim is not None and (
            isinstance(intermediate_dim, bool)
            or not isinstance(intermediate_dim, int)
            or intermediate_dim < 1
        ):
            raise ValueError(
                "`intermediate_dim` must be a positive integer or None. "
                f"Received: intermediate_dim={intermediate_dim!r}"
            )
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}")
        self.num_classes = num_classes
        self.pooling = pooling
        self.intermediate_dim = intermediate_dim
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.head_dtype = head_dtype
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "ClassificationHead expects hidden states of shape (B, T, D) "
                f"with a known D. Received: inputs.shape={tuple(input_shape)}"
            )
        hidden_dim = input_shape[-1]
        if self.pooling == "attention":
            self.attention_pooling = AttentionPooling(
                dtype=self.dtype_policy, name="attention_pooling"
            )
            self.attention_pooling.build(input_shape)
        if self.intermediate_dim is not None:
            self.intermediate_dense = keras.layers.Dense(
                self.intermediate_dim,
                activation="tanh",
                dtype=self.dtype_policy,
                name="intermediate_dense",
            )
            self.intermediate_dense.build((None, hidden_dim))
            hidden_dim = self.intermediate_dim
        self.output_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="output_dropout"
        )
        self.output_dropout.build((None, hidden_dim))
        self.output_dense = keras.layers.Dense(
            self.num_classes,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dense.build((None, hidden_dim))

    def call(self, inputs, padding_mask=None, training=None, mask=None):
        # An explicit padding mask wins over the implicit Keras mask.
        padding_mask = mask if padding_mask is None else padding_mask
        padding_mask = validate_shape(
            "padding_mask", padding_mask, (inputs.shape[0], inputs.shape[1]), "(B, T)"
        )
        x = ops.cast(inputs, self.compute_dtype)  # [B, T, D]
        x = self._pool(x, padding_mask)  # [B, D]
        if self.intermediate_dim is not None:
            x = self.intermediate_dense(x)  # [B, intermediate_dim]
        x = self.output_dropout(x, training=training)
        return self.output_dense(x)  # [B, num_classes]

    def _pool(self, x, padding_mask):
        if self.pooling == "cls":
            return x[:, 0, :]
        if self.pooling == "attention":
            return self.attention_pooling(x, padding_mask=padding_mask)
        if padding_mask is None:
            return ops.mean(x, axis=1) if self.pooling == "mean" else ops.max(x, axis=1)
        padding_mask = ops.cast(padding_mask, "bool")
        mask = ops.expand_dims(padding_mask, -1)  # [B, T, 1]
        if self.pooling == "mean":
            # Summed in float32, as `ops.mean` does: a float16 sum of many
            # positions overflows.
            weights = ops.cast(mask, "float32")
            count = ops.maximum(ops.sum(weights, axis=1), 1.0)  # [B, 1]; 0 real -> 0, not NaN
            pooled = ops.sum(ops.cast(x, "float32") * weights, axis=1) / count
            return ops.cast(pooled, x.dtype)
        pooled = ops.max(ops.where(mask, x, mask_fill_value(x.dtype)), axis=1)  # [B, D]
        return ops.where(ops.any(mask, axis=1), pooled, 0.0)

    def compute_mask(self, inputs, mask=None):
        # One vector per example: no sequence axis left to mask.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "pooling": self.pooling,
                "intermediate_dim": self.intermediate_dim,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "head_dtype": self.head_dtype,
            }
        )
        return config
