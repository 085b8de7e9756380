"""keras-attention: attention layers, Transformer blocks and task heads for Keras 3."""

from keras_attention import heads
from keras_attention import layers
from keras_attention import ops

__version__ = "0.1.0"

__all__ = ["heads", "layers", "ops"]
