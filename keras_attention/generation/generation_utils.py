"""Helpers shared by the decoding searches: argument checks and end-of-sequence masking.

Every search drives the same `next` function, keras_hub's sampler protocol:
`next(token_ids, cache, index) -> (logits, hidden_states, cache)`, where
`logits` `(B, V)` score the token at position `index` given
`token_ids[:, :index]`, and `cache` is any nested structure of tensors whose
first axis is the batch (`B`, or `B * K` inside a beam search).
"""

from keras import ops


def validate_token_id(name, value, allow_none=False):
    """Raise a `ValueError` unless `value` is a non-negative integer (or None)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer token id. Received: {name}={value!r}")
    return value


def validate_prompt(prompt, index):
    """Check the prompt's rank and the first generated position; return `prompt` as a tensor."""
    prompt = ops.convert_to_tensor(prompt)
    if len(prompt.shape) != 2:
        raise ValueError(
            "`prompt` must be integer token ids of shape (B, L): the prompt in "
            f"positions < index, room for the output after. Received: shape={tuple(prompt.shape)}"
        )
    if not isinstance(index, int) or index < 1:
        raise ValueError(
            "`index` must be a positive integer, the first position to generate: "
            f"position 0 holds at least a start token. Received: index={index!r}"
        )
    length = prompt.shape[1]
    if length is not None and index >= length:
        raise ValueError(
            f"`index` must be smaller than the prompt length {length}, to leave room for "
            f"the output. Received: index={index}. Pad the prompt to the longest output."
        )
    return prompt


def mask_after_end(token_ids, end_token_id, pad_token_id, index):
    """Replace every token after the first `end_token_id` (from `index` on) with `pad_token_id`.

    Args:
        token_ids: integer tensor `(..., L)`.
        end_token_id: int. The end-of-sequence token; it is kept.
        pad_token_id: int. Written after it.
        index: int. The first generated position; earlier tokens (the
            prompt) are left as they are.

    Returns:
        An integer tensor of the same shape.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_attention.generation.generation_utils import mask_after_end
    >>> ids = np.array([[1, 5, 2, 7, 2], [1, 6, 6, 6, 6]])
    >>> ops.convert_to_numpy(mask_after_end(ids, end_token_id=2, pad_token_id=0, index=1)).tolist()
    [[1, 5, 2, 0, 0], [1, 6, 6, 6, 6]]
    """
    token_ids = ops.convert_to_tensor(token_ids)
    length = ops.shape(token_ids)[-1]
    generated = ops.arange(length) >= index  # [L]
    is_end = ops.logical_and(ops.equal(token_ids, end_token_id), generated)  # [..., L]
    # Ends strictly before each position: a running count shifted by one.
    ends_before = ops.cumsum(ops.cast(is_end, "int32"), axis=-1) - ops.cast(is_end, "int32")
    after_end = ops.logical_and(ends_before > 0, generated)
    return ops.where(after_end, ops.cast(pad_token_id, token_ids.dtype), token_ids)
