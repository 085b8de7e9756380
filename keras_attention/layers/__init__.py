"""Attention layers, position encodings, embeddings and Transformer blocks."""

from keras_attention.layers.attention_pooling import AttentionPooling
from keras_attention.layers.audio_feature_embedding import AudioFeatureEmbedding
from keras_attention.layers.bahdanau_attention import BahdanauAttention
from keras_attention.layers.feed_forward import FeedForward
from keras_attention.layers.luong_attention import LuongAttention
from keras_attention.layers.multi_head_attention import MultiHeadAttention
from keras_attention.layers.patch_embedding import PatchEmbedding
from keras_attention.layers.position_embedding import PositionEmbedding
from keras_attention.layers.rotary_embedding import RotaryEmbedding
from keras_attention.layers.scaled_dot_product_attention import ScaledDotProductAttention
from keras_attention.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding
from keras_attention.layers.token_and_position_embedding import TokenAndPositionEmbedding
from keras_attention.layers.transformer_decoder import TransformerDecoder
from keras_attention.layers.transformer_encoder import TransformerEncoder

__all__ = [
    "AttentionPooling",
    "AudioFeatureEmbedding",
    "BahdanauAttention",
    "FeedForward",
    "LuongAttention",
    "MultiHeadAttention",
    "PatchEmbedding",
    "PositionEmbedding",
    "RotaryEmbedding",
    "ScaledDotProductAttention",
    "SinusoidalPositionEncoding",
    "TokenAndPositionEmbedding",
    "TransformerDecoder",
    "TransformerEncoder",
]
