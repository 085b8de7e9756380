"""The Transformer decoder block, with optional cross-attention and caches."""

import keras

from keras_attention.layers.layer_utils import head_size
from keras_attention.layers.layer_utils import validate_shape
from keras_attention.layers.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="keras_attention")
class TransformerDecoder(TransformerBlock):
    """Transformer decoder block: causal self-attention, cross-attention, feed-forward.

    The decoder layer of Vaswani et al. (2017), with the arguments, call
    arguments, caches, weights (in the same order) and results of
    `keras_hub.layers.TransformerDecoder`. Called as
    `layer(decoder_sequence)` it has no cross-attention (a decoder-only model
    such as GPT-2); called as `layer(decoder_sequence, encoder_sequence)` it
    builds a cross-attention block (an encoder-decoder model). The number of
    inputs must stay the same across calls. Self-attention is causal by
    default. Post-norm by default; pre-norm with `normalize_first=True`.

    Incremental decoding: pass `self_attention_cache` `(B, 2, S, K, H)` and
    `self_attention_cache_update_index`, one or a few tokens at a time, and
    (with cross-attention) `cross_attention_cache` `(B, 2, S_enc, K, H)`,
    filled once with `cross_attention_cache_update_index=0` and reused with
    `None`. Decoding token by token gives the outputs of the full causal pass.

    Masks: `decoder_padding_mask` (True for real tokens) masks the padded
    decoder tokens as keys and gives them zero self-attention as queries;
    `encoder_padding_mask` masks the padded encoder positions. Without them,
    the Keras masks of `decoder_sequence` and `encoder_sequence` are used;
    explicit masks win. Attention masks are merged with them.

    Args:
        intermediate_dim: int. Hidden size of the feed-forward network.
        num_heads: int. Number of attention heads; the head size is
            `hidden_dim // num_heads`.
        dropout: float. Dropout rate of the attention scores, the attention
            outputs and the feed-forward output. Defaults to `0`.
        activation: str or callable. Activation of the feed-forward network.
            Defaults to `"relu"`.
        layer_norm_epsilon: float. Epsilon of the layer normalizations.
            Defaults to `1e-5`.
        kernel_initializer: initializer of the dense and attention kernels.
            Defaults to `"glorot_uniform"`.
        bias_initializer: initializer of the dense and attention biases.
            Defaults to `"zeros"`.
        normalize_first: bool. Normalize the inputs of each block (pre-norm)
            rather than their outputs (post-norm). Defaults to `False`.
        num_key_value_heads: int. Key/value heads `K` of both attentions,
            dividing `num_heads`; the caches have `K` heads. Defaults to
            `None`, which means `num_heads`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        decoder_sequence: tensor `(B, T, hidden_dim)`.
        encoder_sequence: optional tensor `(B, S_enc, dim)`. Required if and
            only if the layer was built with cross-attention.
        decoder_padding_mask: optional boolean `(B, T)`, True for the real
            tokens of `decoder_sequence`. With a cache, it covers the new
            tokens only; earlier cache positions count as real unless
            `decoder_attention_mask` masks them. Defaults to the Keras mask
            of `decoder_sequence`.
        decoder_attention_mask: optional boolean `(B, T, S)`, where `S` is
            `T`, or the cache length with a cache.
        encoder_padding_mask: optional boolean `(B, S_enc)`. Defaults to the
            Keras mask of `encoder_sequence`.
        encoder_attention_mask: optional boolean `(B, T, S_enc)`.
        self_attention_cache: optional tensor `(B, 2, S, K, H)`.
        self_attention_cache_update_index: int or int tensor. Where the new
            tokens' keys and values are written; also the absolute position
            of the first new token for the causal mask.
        cross_attention_cache: optional tensor `(B, 2, S_enc, K, H)`.
        cross_attention_cache_update_index: `0` to fill the cross-attention
            cache from `encoder_sequence`, `None` to reuse it.
        use_causal_mask: bool. Causal self-attention. Defaults to `True`.
        training: bool. Apply dropout. Defaults to `None`.
        return_attention_scores: bool. Also return the self-attention scores
            `(B, num_heads, T, S)` and, with cross-attention, the
            cross-attention scores `(B, num_heads, T, S_enc)`. Defaults to
            `False`.

    Returns:
        `outputs` `(B, T, hidden_dim)`, followed, in this order and only when
        present, by the self- and cross-attention scores (with
        `return_attention_scores=True`), then the updated self- and
        cross-attention caches (when caches are passed). For example
        `(outputs, self_cache, cross_cache)`, as keras_hub, or
        `(outputs, self_scores, cross_scores)`.

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers import TransformerDecoder
    >>> decoder = TransformerDecoder(intermediate_dim=32, num_heads=4)
    >>> decoder_sequence = np.random.rand(2, 5, 16).astype("float32")
    >>> encoder_sequence = np.random.rand(2, 7, 16).astype("float32")
    >>> outputs, self_scores, cross_scores = decoder(
    ...     decoder_sequence, encoder_sequence, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(self_scores.shape), tuple(cross_scores.shape)
    ((2, 5, 16), (2, 4, 5, 5), (2, 4, 5, 7))

    One decoding step with caches (`H = 16 // 4 = 4`):

    >>> self_cache = np.zeros((2, 2, 5, 4, 4), "float32")
    >>> cross_cache = np.zeros((2, 2, 7, 4, 4), "float32")
    >>> outputs, self_cache, cross_cache = decoder(
    ...     decoder_sequence[:, :1], encoder_sequence,
    ...     self_attention_cache=self_cache, self_attention_cache_update_index=0,
    ...     cross_attention_cache=cross_cache, cross_attention_cache_update_index=0)
    >>> tuple(outputs.shape), tuple(self_cache.shape)
    ((2, 1, 16), (2, 2, 5, 4, 4))

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        hidden_dim = decoder_sequence_shape[-1]
        key_dim = head_size(hidden_dim, self.num_heads)
        # Sublayers, attributes and names follow keras_hub's TransformerDecoder,
        # so its get_weights() order and its weight files carry over.
        self._self_attention_layer = self._make_attention("self_attention", key_dim)
        self._self_attention_layer.build(decoder_sequence_shape, decoder_sequence_shape)
        self._self_attention_layer_norm = self._make_layer_norm(
            "self_attention_layer_norm", decoder_sequence_shape
        )
        self._self_attention_dropout = self._make_dropout(
            "self_attention_dropout", decoder_sequence_shape
        )
        self._cross_attention_layer = None
        if encoder_sequence_shape is not None:
            self._cross_attention_layer = self._make_attention("cross_attention", key_dim)
            self._cross_attention_layer.build(decoder_sequence_shape, encoder_sequence_shape)
            self._cross_attention_layer_norm = self._make_layer_norm(
                "cross_attention_layer_norm", decoder_sequence_shape
            )
            self._cross_attention_dropout = self._make_dropout(
                "cross_attention_dropout", decoder_sequence_shape
            )
        self._build_feedforward_denses(decoder_sequence_shape)
        self._feedforward_layer_norm = self._make_layer_norm(
            "feedforward_layer_norm", decoder_sequence_shape
        )
        self._feedforward_dropout = self._make_dropout("feedforward_dropout", decoder_sequence_shape)

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        cross_attention_cache_update_index=None,
        use_causal_mask=True,
        training=None,
        return_attention_scores=False,
    ):
        has_cross_attention = self._cross_attention_layer is not None
        self._check_call_arguments(
            has_cross_attention, encoder_sequence, self_attention_cache, cross_attention_cache
        )
        batch_size, length = decoder_sequence.shape[0], decoder_sequence.shape[1]
        decoder_padding_mask = validate_shape(
            "decoder_padding_mask", decoder_padding_mask, (batch_size, length), "(B, T)"
        )
        self_key_length = length if self_attention_cache is None else self_attention_cache.shape[2]
        encoder_length = None
        if encoder_sequence is not None:
            encoder_length = (
                encoder_sequence.shape[1]
                if cross_attention_cache is None
                else cross_attention_cache.shape[2]
            )
        decoder_attention_mask = validate_shape(
            "decoder_attention_mask",
            decoder_attention_mask,
            (batch_size, length, self_key_length),
            "(B, T, S)",
            broadcast_axes=(0, 1, 2),
        )
        encoder_padding_mask = validate_shape(
            "encoder_padding_mask", encoder_padding_mask, (batch_size, encoder_length), "(B, S_enc)"
        )
        encoder_attention_mask = validate_shape(
            "encoder_attention_mask",
            encoder_attention_mask,
            (batch_size, length, encoder_length),
            "(B, T, S_enc)",
            broadcast_axes=(0, 1, 2),
        )

        # Self-attention block. Without `decoder_padding_mask` the attention
        # layer picks up the Keras mask of `x` (see layer_utils).
        x = self._residual_input(decoder_sequence, self._self_attention_layer_norm)
        outputs = self._self_attention_layer(
            x,
            x,
            query_mask=decoder_padding_mask,
            value_mask=decoder_padding_mask,
            attention_mask=decoder_attention_mask,
            use_causal_mask=use_causal_mask,
            return_attention_scores=return_attention_scores,
            cache=self_attention_cache,
            cache_update_index=self_attention_cache_update_index,
            training=training,
        )  # [B, T, hidden_dim], [B, N, T, S]?, [B, 2, S, K, H]?
        x, self_attention_scores, self_attention_cache = _unpack(
            outputs, return_attention_scores, self_attention_cache is not None
        )
        x = self._residual_output(
            x, decoder_sequence, self._self_attention_layer_norm, self._self_attention_dropout, training
        )

        # Cross-attention block.
        cross_attention_scores = None
        if has_cross_attention:
            residual = x
            x = self._residual_input(x, self._cross_attention_layer_norm)
            outputs = self._cross_attention_layer(
                x,
                encoder_sequence,
                value_mask=encoder_padding_mask,
                attention_mask=encoder_attention_mask,
                return_attention_scores=return_attention_scores,
                cache=cross_attention_cache,
                cache_update_index=cross_attention_cache_update_index,
                training=training,
            )  # [B, T, hidden_dim], [B, N, T, S_enc]?, [B, 2, S_enc, K, H]?
            x, cross_attention_scores, cross_attention_cache = _unpack(
                outputs, return_attention_scores, cross_attention_cache is not None
            )
            x = self._residual_output(
                x, residual, self._cross_attention_layer_norm, self._cross_attention_dropout, training
            )

        x = self._feedforward_block(x, training)

        outputs = (x,)
        if return_attention_scores:
            outputs += (self_attention_scores,)
            if has_cross_attention:
                outputs += (cross_attention_scores,)
        if self_attention_cache is not None:
            outputs += (self_attention_cache,)
            if has_cross_attention:
                outputs += (cross_attention_cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    def _check_call_arguments(
        self, has_cross_attention, encoder_sequence, self_attention_cache, cross_attention_cache
    ):
        has_encoder_sequence = encoder_sequence is not None
        if has_encoder_sequence != has_cross_attention:
            built = "with" if has_cross_attention else "without"
            received = "an" if has_encoder_sequence else "no"
            raise ValueError(
                "The number of inputs of TransformerDecoder must not change "
                f"between calls. This layer was built {built} cross-attention, "
                f"but received {received} `encoder_sequence`. Call it as "
                "`layer(decoder_sequence, encoder_sequence)` for cross-attention, "
                "or `layer(decoder_sequence)` without."
            )
        if not has_cross_attention and cross_attention_cache is not None:
            raise ValueError(
                "`cross_attention_cache` was given to a TransformerDecoder "
                "without cross-attention. Received: "
                f"cross_attention_cache.shape={tuple(cross_attention_cache.shape)}"
            )
        if has_cross_attention and (self_attention_cache is None) != (cross_attention_cache is None):
            raise ValueError(
                "With cross-attention, `self_attention_cache` and "
                "`cross_attention_cache` must both be set or both be None. "
                f"Received: self_attention_cache is "
                f"{'None' if self_attention_cache is None else 'set'}, "
                f"cross_attention_cache is "
                f"{'None' if cross_attention_cache is None else 'set'}."
            )

    def compute_output_shape(self, decoder_sequence_shape, encoder_sequence_shape=None):
        return tuple(decoder_sequence_shape)

    def compute_output_spec(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        cross_attention_cache_update_index=None,
        use_causal_mask=True,
        training=None,
        return_attention_scores=False,
    ):
        batch_size, length = decoder_sequence.shape[0], decoder_sequence.shape[1]
        has_cross_attention = encoder_sequence is not None
        spec = lambda shape: keras.KerasTensor(shape, dtype=self.compute_dtype)  # noqa: E731
        outputs = (spec(decoder_sequence.shape),)
        if return_attention_scores:
            key_length = length if self_attention_cache is None else self_attention_cache.shape[2]
            outputs += (spec((batch_size, self.num_heads, length, key_length)),)
            if has_cross_attention:
                key_length = (
                    encoder_sequence.shape[1]
                    if cross_attention_cache is None
                    else cross_attention_cache.shape[2]
                )
                outputs += (spec((batch_size, self.num_heads, length, key_length)),)
        if self_attention_cache is not None:
            outputs += (spec(self_attention_cache.shape),)
            if has_cross_attention:
                outputs += (spec(cross_attention_cache.shape),)
        return outputs[0] if len(outputs) == 1 else outputs


def _unpack(outputs, has_scores, has_cache):
    """Split an attention layer's outputs into `(output, scores, cache)`."""
    if not has_scores and not has_cache:
        return outputs, None, None
    outputs = tuple(outputs)
    output, rest = outputs[0], outputs[1:]
    scores = rest[0] if has_scores else None
    cache = rest[-1] if has_cache else None
    return output, scores, cache
