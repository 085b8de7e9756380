"""Tests of the mask helpers: values by hand, merging, and every error."""

import numpy as np
import pytest
from keras import ops

from keras_attention.ops import causal_mask
from keras_attention.ops import compute_attention_mask
from keras_attention.ops import mask_fill_value
from keras_attention.ops import merge_masks
from keras_attention.ops import padding_to_attention_mask
from keras_attention.ops import sliding_window_mask
from keras_attention.ops.masks import validate_mask_rank


def as_int(mask):
    return ops.convert_to_numpy(mask).astype(int).tolist()


# === Fill values ===


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_fill_value_is_finite_and_leaves_room_for_a_bias(dtype):
    fill = mask_fill_value(dtype)
    largest = float(np.finfo("float32" if dtype == "bfloat16" else dtype).max)
    assert -largest < fill < -0.5 * largest
    # The fill plus a bias of the same sign and 40% of its size stays finite
    # in the dtype itself.
    total = ops.cast(fill, dtype) + ops.cast(0.4 * fill, dtype)
    assert np.isfinite(ops.convert_to_numpy(ops.cast(total, "float32")))


# === Causal and sliding-window masks ===


def test_causal_mask_with_start_index():
    # Two new queries after 2 cached tokens see keys 0..2 and 0..3.
    assert as_int(causal_mask(2, 4, start_index=2)) == [[[1, 1, 1, 0], [1, 1, 1, 1]]]


@pytest.mark.parametrize("start_index", [np.int64(2), np.int32(2), "int64 tensor"])
def test_masks_take_any_integer_start_index(start_index):
    # A decoding loop's index often comes as NumPy or int64: same masks as 2.
    if start_index == "int64 tensor":
        start_index = ops.convert_to_tensor(2, "int64")
    assert as_int(causal_mask(2, 4, start_index=start_index)) == as_int(causal_mask(2, 4, 2))
    window = sliding_window_mask(2, 4, window_size=2, start_index=start_index)
    assert as_int(window) == as_int(sliding_window_mask(2, 4, window_size=2, start_index=2))


def test_causal_mask_with_more_keys_than_queries():
    assert as_int(causal_mask(2, 3)) == [[[1, 0, 0], [1, 1, 0]]]


def test_sliding_window_mask_with_causal():
    mask = merge_masks(causal_mask(4, 4), sliding_window_mask(4, 4, window_size=2))
    assert as_int(mask) == [[[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]]


def test_sliding_window_mask_with_start_index():
    assert as_int(sliding_window_mask(1, 4, window_size=2, start_index=3)) == [[[0, 0, 1, 1]]]


@pytest.mark.parametrize("window_size", [0, -1, 1.5, True, None])
def test_sliding_window_mask_rejects_bad_window_size(window_size):
    message = f"`window_size` must be a positive integer. Received: window_size={window_size!r}"
    with pytest.raises(ValueError, match=message):
        sliding_window_mask(3, 3, window_size=window_size)


# === Padding and merging ===


def test_padding_to_attention_mask_with_query_padding():
    key_padding = np.array([[True, True, False]])
    query_padding = np.array([[True, False]])
    mask = padding_to_attention_mask(key_padding, query_padding_mask=query_padding)
    # The padded query attends nothing: its output will be zeros.
    assert as_int(mask) == [[[1, 1, 0], [0, 0, 0]]]


def test_padding_to_attention_mask_broadcasts_without_query_length():
    mask = padding_to_attention_mask(np.array([[1, 0, 1], [1, 1, 0]]))
    assert tuple(mask.shape) == (2, 1, 3)
    assert as_int(mask) == [[[1, 0, 1]], [[1, 1, 0]]]


def test_merge_masks_skips_none_and_returns_none_for_nothing():
    assert merge_masks(None, None) is None
    mask = merge_masks(None, np.array([[True, False]]), np.array([[True], [False]]))
    assert as_int(mask) == [[1, 0], [0, 0]]


def test_compute_attention_mask_merges_every_source():
    mask = compute_attention_mask(
        3,
        3,
        query_padding_mask=np.array([[True, True, False]]),
        key_padding_mask=np.array([[True, True, True]]),
        attention_mask=np.array([[[1, 1, 1], [0, 1, 1], [1, 1, 1]]]),
        use_causal_mask=True,
    )
    assert as_int(mask) == [[[1, 0, 0], [0, 1, 0], [0, 0, 0]]]


def test_compute_attention_mask_without_masks_is_none():
    assert compute_attention_mask(3, 3) is None


def test_compute_attention_mask_for_a_cached_step():
    mask = compute_attention_mask(1, 4, use_causal_mask=True, start_index=2)
    assert as_int(mask) == [[[1, 1, 1, 0]]]


# === Errors ===


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(key_padding_mask=np.ones((2, 3, 1), bool)), "key_padding_mask"),
        (dict(query_padding_mask=np.ones((3,), bool)), "query_padding_mask"),
        (dict(attention_mask=np.ones((3, 3), bool)), "attention_mask"),
    ],
)
def test_compute_attention_mask_rejects_wrong_ranks(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must have rank .*Received: {name}.shape="):
        compute_attention_mask(3, 3, **kwargs)


def test_padding_to_attention_mask_rejects_wrong_ranks():
    message = r"`key_padding_mask` must have rank 2, with shape \(B, S\)"
    with pytest.raises(ValueError, match=message):
        padding_to_attention_mask(np.ones((1, 1, 3), bool))
    message = r"`query_padding_mask` must have rank 2, with shape \(B, T\)"
    with pytest.raises(ValueError, match=message):
        padding_to_attention_mask(np.ones((1, 3), bool), query_padding_mask=np.ones((2,), bool))


def test_validate_mask_rank_names_the_argument():
    message = (
        r"`my_mask` must have rank 3, with shape \(B, T, S\). "
        r"Received: my_mask.shape=\(2, 3\)"
    )
    with pytest.raises(ValueError, match=message):
        validate_mask_rank("my_mask", np.ones((2, 3), bool), 3, "(B, T, S)")
