"""A CTC head: frame embeddings to per-frame vocabulary logits."""

import keras
from keras import ops

from keras_attention.heads.head_utils import standardize_head_dtype


@keras.saving.register_keras_serializable(package="keras_attention")
class CTCHead(keras.layers.Layer):
    """Project frames `(B, T, D)` to CTC logits `(B, T, V)`, blank at index 0.

    The output layer of a speech-to-text (or handwriting) encoder trained with
    Connectionist Temporal Classification. `vocabulary_size` counts the blank,
    which is index 0, where Keras's CTC functions expect it: `keras.losses.CTC`
    (labels padded with 0) and the default `mask_index=0` of
    `keras.ops.ctc_loss` and `keras.ops.ctc_decode`. The outputs are logits,
    which is what those functions take (they normalize internally); a
    `log_softmax` of them gives the per-frame log-probabilities.

    Training and decoding with Keras's own functions:
    - loss, all frames real: `keras.losses.CTC()(labels, logits)`, with
      `labels` `(B, L)` padded with 0;
    - loss, padded frames: `keras.ops.ctc_loss(labels, logits, label_lengths,
      frame_lengths)`, with `frame_lengths = ops.sum(ops.cast(padding_mask,
      "int32"), axis=1)`;
    - decoding: `keras.ops.ctc_decode(logits, frame_lengths,
      strategy="greedy")` or `strategy="beam_search", beam_width=...`; it
      returns `(top_paths, B, T)` label ids, padded with -1, and their scores.

    The Keras mask of the frames passes on to the logits. The head computes in
    `head_dtype`, float32 by default, so the logits and the CTC loss stay in
    float32 under mixed precision; a `head_dtype` that is not `None` is the
    layer's dtype policy (it overrides `dtype` and the global policy).

    Args:
        vocabulary_size: int. `V`, the number of labels, blank included.
        dropout: float. Dropout rate on the frames before the projection.
            Defaults to `0.0`.
        kernel_initializer: str or initializer. Initializer of the kernel.
            Defaults to `"glorot_uniform"`.
        head_dtype: str or `keras.DTypePolicy`. Dtype policy of the head's
            weights, computations and outputs. Defaults to `"float32"`;
            `None` follows `dtype` (or the global policy).
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: tensor `(B, T, D)`.
        training: bool. Apply dropout. Defaults to `None`.

    Returns:
        The logits `(B, T, V)`, in the compute dtype of `head_dtype`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from keras_attention.heads import CTCHead
    >>> frames = np.random.rand(2, 6, 8).astype("float32")
    >>> logits = CTCHead(vocabulary_size=5)(frames)
    >>> labels = np.array([[1, 2, 0], [3, 0, 0]])  # padded with the blank, 0
    >>> loss = keras.losses.CTC()(labels, logits)
    >>> tuple(loss.shape), bool(np.isfinite(keras.ops.convert_to_numpy(loss)))
    ((), True)
    >>> decoded, scores = keras.ops.ctc_decode(logits, np.array([6, 4]))
    >>> tuple(decoded.shape)
    (1, 2, 6)

    References:
        - [Graves et al., 2006](https://www.cs.toronto.edu/~graves/icml_2006.pdf)
    """

    def __init__(
        self,
        vocabulary_size,
        dropout=0.0,
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
            or vocabulary_size < 2
        ):
            raise ValueError(
                "`vocabulary_size` must be an integer of at least 2 (the blank, "
                f"index 0, and one label). Received: vocabulary_size={vocabulary_size!r}"
            )
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}")
        self.vocabulary_size = vocabulary_size
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.head_dtype = head_dtype
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "CTCHead expects frames of shape (B, T, D) with a known D. "
                f"Received: inputs.shape={tuple(input_shape)}"
            )
        self.frame_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="frame_dropout"
        )
        self.frame_dropout.build(input_shape)
        self.output_dense = keras.layers.Dense(
            self.vocabulary_size,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dense.build(input_shape)

    def call(self, inputs, training=None):
        x = ops.cast(inputs, self.compute_dtype)  # [B, T, D]
        x = self.frame_dropout(x, training=training)
        return self.output_dense(x)  # [B, T, V]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.vocabulary_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "head_dtype": self.head_dtype,
            }
        )
        return config
