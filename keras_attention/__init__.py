"""keras-attention: attention layers, Transformer blocks and task heads for Keras 3."""

# Every submodule with registered classes: after `import keras_attention`,
# `keras.saving.load_model` finds all of them (a schedule in a saved optimizer too).
from keras_attention import finetune
from keras_attention import generation
from keras_attention import heads
from keras_attention import layers
from keras_attention import ops

__version__ = "0.1.0"

__all__ = ["finetune", "generation", "heads", "layers", "ops"]
