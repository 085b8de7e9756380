"""Decoding over a cached decoder: greedy search, beam search and random sampling.

Every search drives a decoder one token at a time through a `next` function
with keras_hub's sampler protocol, `next(token_ids, cache, index) -> (logits,
hidden_states, cache)`, so the same `next` serves our searches and
`keras_hub.samplers`.
"""

from keras_attention.generation.beam_search import BeamSearch
from keras_attention.generation.greedy_search import GreedySearch
from keras_attention.generation.random_sampling import RandomSampling

__all__ = ["BeamSearch", "GreedySearch", "RandomSampling"]
