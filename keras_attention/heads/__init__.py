"""Task heads: classification, language modelling and CTC."""

__all__ = []
