"""Small helpers shared by the attention layers and Transformer blocks.

How a layer receives the implicit Keras mask (the `_keras_mask` that
`keras.layers.Embedding(mask_zero=True)` attaches) without private Keras
APIs: declare it as a call argument. `keras.layers.Layer.__call__` fills
`mask=None` from the mask of a layer's only tensor input, and `<name>_mask=None`
from the mask of the tensor argument `<name>` when `call` takes several
tensors (`query_mask`, `value_mask`, `key_mask` for `call(query, value, key)`).
It fills an argument only when the caller left it `None`, so an explicit mask
always wins over the implicit one (`STYLE.md`, point 5). Blocks that wrap an
attention layer pass their explicit padding masks down as `query_mask` /
`value_mask` and let the attention layer pick up the implicit one otherwise.

The masks themselves are merged in one place: `keras_attention.ops.masks`.
`check_block_arguments` validates what `TransformerEncoder` and
`TransformerDecoder` take (their shared plumbing is `transformer_block.TransformerBlock`).
"""

import keras
from keras import ops


def clone_initializer(initializer):
    """Return a fresh copy of `initializer`, so two sublayers never share one.

    A seeded initializer instance gives the same values at every call; each
    sublayer gets its own copy, as in `keras.layers.MultiHeadAttention`.

    Args:
        initializer: a `keras.initializers.Initializer`.

    Returns:
        A new initializer of the same class and config.

    Example:

    >>> import keras
    >>> from keras_attention.layers.layer_utils import clone_initializer
    >>> original = keras.initializers.GlorotUniform(seed=1)
    >>> copy = clone_initializer(original)
    >>> copy is original, copy.get_config() == original.get_config()
    (False, True)
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    return initializer.__class__.from_config(initializer.get_config())


def validate_shape(name, tensor, expected_shape, layout, broadcast_axes=(0,)):
    """Check the rank and the statically known dimensions of a mask or cache.

    Raises a `ValueError` that names the argument, what was received and what
    was expected. Unknown dimensions (`None`, symbolic) are not compared.

    Args:
        name: str. The argument name, used in the message.
        tensor: a tensor or array, or `None` (nothing to check).
        expected_shape: tuple of int or `None`, one entry per axis.
        layout: str. The shape in letters, e.g. `"(B, T, S)"`.
        broadcast_axes: tuple of int. Axes where a dimension of 1 is also
            accepted (broadcast). Defaults to `(0,)`, the batch axis.

    Returns:
        `tensor` (an array or list converted to a tensor), or `None`.

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers.layer_utils import validate_shape
    >>> validate_shape("padding_mask", np.ones((2, 3), bool), (2, 4), "(B, T)")
    Traceback (most recent call last):
    ...
    ValueError: `padding_mask` must have shape (B, T) = (2, 4). Received: padding_mask.shape=(2, 3)
    """
    if tensor is None:
        return None
    if not hasattr(tensor, "shape"):
        tensor = ops.convert_to_tensor(tensor)
    received = tuple(tensor.shape)
    expected_text = f"{layout} = {tuple(expected_shape)}"
    if len(received) != len(expected_shape):
        raise ValueError(
            f"`{name}` must have rank {len(expected_shape)}, with shape "
            f"{expected_text}. Received: {name}.shape={received}"
        )
    for axis, (got, expected) in enumerate(zip(received, expected_shape)):
        if got is None or expected is None or got == expected:
            continue
        if got == 1 and axis in broadcast_axes:
            continue
        raise ValueError(
            f"`{name}` must have shape {expected_text}. Received: "
            f"{name}.shape={received}"
        )
    return tensor


# === Transformer blocks (encoder and decoder) ===


def head_size(hidden_dim, num_heads):
    """`hidden_dim // num_heads`, or a `ValueError` if that is zero."""
    key_dim = hidden_dim // num_heads
    if key_dim == 0:
        raise ValueError(
            "The attention head size hidden_dim // num_heads is zero: the "
            f"inputs' hidden_dim={hidden_dim} must be at least "
            f"num_heads={num_heads}. Use fewer heads or wider inputs."
        )
    return key_dim


def check_block_arguments(intermediate_dim, num_heads, dropout, num_key_value_heads):
    """Validate the constructor arguments shared by the Transformer blocks."""
    for name, value in (("intermediate_dim", intermediate_dim), ("num_heads", num_heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}")
    if num_key_value_heads is not None and (
        isinstance(num_key_value_heads, bool)
        or not isinstance(num_key_value_heads, int)
        or num_key_value_heads <= 0
        or num_heads % num_key_value_heads != 0
    ):
        raise ValueError(
            "`num_key_value_heads` must be a positive integer that divides "
            f"`num_heads`. Received: num_heads={num_heads}, "
            f"num_key_value_heads={num_key_value_heads!r}"
        )
