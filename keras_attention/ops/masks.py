"""Mask helpers shared by every attention layer.

One convention everywhere (see `STYLE.md`, point 5):
- `padding_mask`: boolean `(B, T)`, True where the token is real.
- `attention_mask`: boolean `(B, T, S)`, True where query `t` may attend to key `s`.
- Causality is a call argument, turned into a mask here.

Every function returns boolean tensors (or `None` when there is nothing to mask)
so that masks merge with a logical AND, whatever produced them.
"""

import keras
import numpy as np
from keras import ops


def mask_fill_value(dtype):
    """Return the additive value that removes a masked logit, for `dtype`.

    A large negative *finite* number: `-inf` would turn a fully masked row
    into NaN, and `-1e9` overflows float16 (largest magnitude 65504).
    70% of the dtype's most negative value leaves room to add a bias
    without overflowing.

    Args:
        dtype: str or dtype. The dtype of the logits.

    Returns:
        A Python float.

    Example:

    >>> from keras_attention.ops import mask_fill_value
    >>> mask_fill_value("float16")
    -45852.8
    """
    dtype = keras.backend.standardize_dtype(dtype)
    # NumPy has no bfloat16; its range is float32's (8 exponent bits).
    largest = np.finfo("float32" if dtype == "bfloat16" else dtype).max
    return -0.7 * float(largest)


def causal_mask(query_length, key_length, start_index=0):
    """Return a `(1, T, S)` boolean mask where query `t` sees keys `<= t`.

    Query `t` sits at absolute position `start_index + t`, so the same mask
    serves a full pass (`start_index=0`) and a cached decoding step, where
    the `T` new queries follow `start_index` tokens already in the cache.

    Args:
        query_length: int or scalar tensor. `T`.
        key_length: int or scalar tensor. `S`.
        start_index: int or scalar tensor. Absolute position of the first
            query. Defaults to `0`.

    Returns:
        A boolean tensor of shape `(1, T, S)`.

    Example:

    >>> from keras import ops
    >>> from keras_attention.ops import causal_mask
    >>> ops.convert_to_numpy(causal_mask(3, 3))[0].astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    # One integer dtype: an int64 `start_index` (a NumPy or tensor index)
    # does not add to an int32 range.
    query_positions = ops.arange(query_length, dtype="int32")
    query_positions = query_positions + ops.cast(start_index, "int32")  # [T]
    key_positions = ops.arange(key_length, dtype="int32")  # [S]
    mask = ops.expand_dims(query_positions, -1) >= ops.expand_dims(key_positions, 0)
    return ops.expand_dims(mask, 0)  # [1, T, S]


def sliding_window_mask(query_length, key_length, window_size, start_index=0):
    """Return a `(1, T, S)` boolean mask of keys within `window_size` positions.

    Query at absolute position `p` may attend keys `s` with
    `|p - s| < window_size`. Merge it with `causal_mask` for the causal
    local attention of Longformer / Mistral-style decoders.

    Args:
        query_length: int or scalar tensor. `T`.
        key_length: int or scalar tensor. `S`.
        window_size: int. Number of positions on each side that are visible,
            the query's own position included. Must be positive.
        start_index: int or scalar tensor. Absolute position of the first
            query. Defaults to `0`.

    Returns:
        A boolean tensor of shape `(1, T, S)`.

    Example:

    >>> from keras import ops
    >>> from keras_attention.ops import sliding_window_mask
    >>> ops.convert_to_numpy(sliding_window_mask(4, 4, window_size=2))[0].astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]
    """
    # bool is an int subclass: window_size=True would silently mean 1.
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
        raise ValueError(
            f"`window_size` must be a positive integer. Received: "
            f"window_size={window_size!r}"
        )
    # One integer dtype: an int64 `start_index` (a NumPy or tensor index)
    # does not add to an int32 range.
    query_positions = ops.arange(query_length, dtype="int32")
    query_positions = query_positions + ops.cast(start_index, "int32")  # [T]
    key_positions = ops.arange(key_length, dtype="int32")  # [S]
    distance = ops.abs(
        ops.expand_dims(query_positions, -1) - ops.expand_dims(key_positions, 0)
    )  # [T, S]
    return ops.expand_dims(distance < window_size, 0)  # [1, T, S]


def padding_to_attention_mask(key_padding_mask, query_padding_mask=None, query_length=None):
    """Turn `(B, S)` padding masks into a `(B, T, S)` attention mask.

    Args:
        key_padding_mask: boolean tensor `(B, S)`, True for real keys.
        query_padding_mask: optional boolean tensor `(B, T)`, True for real
            queries. Padded queries attend to nothing (their output is zero).
        query_length: int. `T`, needed only when `query_padding_mask` is
            `None`. Defaults to `None`, which gives a `(B, 1, S)` mask that
            broadcasts over every query.

    Returns:
        A boolean tensor `(B, T, S)` (or `(B, 1, S)`).

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_attention.ops import padding_to_attention_mask
    >>> mask = padding_to_attention_mask(np.array([[True, True, False]]), query_length=2)
    >>> ops.convert_to_numpy(mask).astype(int).tolist()
    [[[1, 1, 0], [1, 1, 0]]]
    """
    key_padding_mask = ops.cast(key_padding_mask, "bool")
    validate_mask_rank("key_padding_mask", key_padding_mask, 2, "(B, S)")
    mask = ops.expand_dims(key_padding_mask, 1)  # [B, 1, S]
    if query_padding_mask is not None:
        query_padding_mask = ops.cast(query_padding_mask, "bool")
        validate_mask_rank("query_padding_mask", query_padding_mask, 2, "(B, T)")
        mask = ops.logical_and(mask, ops.expand_dims(query_padding_mask, 2))
    elif query_length is not None:
        shape = ops.shape(key_padding_mask)
        mask = ops.broadcast_to(mask, (shape[0], query_length, shape[1]))
    return mask


def merge_masks(*masks):
    """Combine boolean masks with a logical AND; `None` entries are skipped.

    Args:
        *masks: boolean tensors of broadcast-compatible shapes, or `None`.

    Returns:
        The broadcast AND of the masks, or `None` if every mask is `None`.

    Example:

    >>> from keras import ops
    >>> from keras_attention.ops import causal_mask, merge_masks, sliding_window_mask
    >>> mask = merge_masks(causal_mask(3, 3), None, sliding_window_mask(3, 3, 2))
    >>> ops.convert_to_numpy(mask)[0].astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    """
    merged = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged


def compute_attention_mask(
    query_length,
    key_length,
    query_padding_mask=None,
    key_padding_mask=None,
    attention_mask=None,
    use_causal_mask=False,
    start_index=0,
):
    """Merge every source of masking into one `(B, T, S)` boolean mask.

    The single place where layers combine padding masks, an explicit
    attention mask and causality. Callers resolve "explicit wins over the
    implicit Keras mask" before calling: pass the explicit padding mask when
    the user gave one, the Keras `_keras_mask` otherwise.

    Args:
        query_length: int. `T`.
        key_length: int. `S`.
        query_padding_mask: optional boolean `(B, T)`.
        key_padding_mask: optional boolean `(B, S)`.
        attention_mask: optional boolean `(B, T, S)`.
        use_causal_mask: bool. Add a causal mask. Defaults to `False`.
        start_index: int or scalar tensor. Absolute position of the first
            query, for cached decoding. Defaults to `0`.

    Returns:
        A boolean tensor broadcastable to `(B, T, S)`, or `None`.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_attention.ops import compute_attention_mask
    >>> mask = compute_attention_mask(
    ...     2, 2, key_padding_mask=np.array([[True, False]]), use_causal_mask=True)
    >>> ops.convert_to_numpy(mask).astype(int).tolist()
    [[[1, 0], [1, 0]]]
    """
    masks = []
    if key_padding_mask is not None:
        key_padding_mask = ops.cast(key_padding_mask, "bool")
        validate_mask_rank("key_padding_mask", key_padding_mask, 2, "(B, S)")
        masks.append(ops.expand_dims(key_padding_mask, 1))  # [B, 1, S]
    if query_padding_mask is not None:
        query_padding_mask = ops.cast(query_padding_mask, "bool")
        validate_mask_rank("query_padding_mask", query_padding_mask, 2, "(B, T)")
        masks.append(ops.expand_dims(query_padding_mask, 2))  # [B, T, 1]
    if attention_mask is not None:
        attention_mask = ops.cast(attention_mask, "bool")
        validate_mask_rank("attention_mask", attention_mask, 3, "(B, T, S)")
        masks.append(attention_mask)  # [B, T, S]
    if use_causal_mask:
        masks.append(causal_mask(query_length, key_length, start_index))  # [1, T, S]
    return merge_masks(*masks)


def validate_mask_rank(name, mask, rank, expected):
    """Raise a `ValueError` naming `name` if `mask` does not have `rank` axes."""
    if len(mask.shape) != rank:
        raise ValueError(
            f"`{name}` must have rank {rank}, with shape {expected}. "
            f"Received: {name}.shape={tuple(mask.shape)}"
        )
