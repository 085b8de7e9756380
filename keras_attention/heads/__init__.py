"""Task heads: classification, language modelling and CTC."""

from keras_attention.heads.classification_head import ClassificationHead
from keras_attention.heads.ctc_head import CTCHead
from keras_attention.heads.language_model_head import LanguageModelHead

__all__ = ["CTCHead", "ClassificationHead", "LanguageModelHead"]
