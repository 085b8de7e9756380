"""Helpers that the task heads share."""

import keras


def standardize_head_dtype(head_dtype):
    """Return `head_dtype` as a policy name (`None` stays `None`).

    Args:
        head_dtype: `None`, a dtype or policy name (`"float32"`,
            `"mixed_bfloat16"`), or a `keras.DTypePolicy`.

    Returns:
        A string that `keras.DTypePolicy` accepts, or `None`.

    Example:

    >>> import keras
    >>> from keras_attention.heads.head_utils import standardize_head_dtype
    >>> standardize_head_dtype(keras.DTypePolicy("mixed_float16"))
    'mixed_float16'
    """
    if head_dtype is None:
        return None
    try:
        return keras.dtype_policies.get(head_dtype).name
    except (ValueError, TypeError) as error:
        raise ValueError(
            "`head_dtype` must be None, a dtype such as 'float32', or a dtype "
            f"policy such as 'mixed_bfloat16'. Received: head_dtype={head_dtype!r}"
        ) from error

