"""Attention layers, position encodings, embeddings and Transformer blocks."""

__all__ = []
