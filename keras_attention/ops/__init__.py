"""Backend-agnostic attention kernels and mask helpers (`keras.ops` only)."""

from keras_attention.ops.attention import dot_product_attention
from keras_attention.ops.masks import causal_mask
from keras_attention.ops.masks import compute_attention_mask
from keras_attention.ops.masks import mask_fill_value
from keras_attention.ops.masks import merge_masks
from keras_attention.ops.masks import padding_to_attention_mask
from keras_attention.ops.masks import sliding_window_mask

__all__ = [
    "causal_mask",
    "compute_attention_mask",
    "dot_product_attention",
    "mask_fill_value",
    "merge_masks",
    "padding_to_attention_mask",
    "sliding_window_mask",
]
