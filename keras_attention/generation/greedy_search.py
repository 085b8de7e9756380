"""Greedy decoding over a cached decoder."""

import keras
import keras_hub
from keras import ops

from keras_attention.generation.generation_utils import mask_after_end
from keras_attention.generation.generation_utils import validate_prompt
from keras_attention.generation.generation_utils import validate_token_id


@keras.saving.register_keras_serializable(package="keras_attention")
class GreedySearch:
    """Greedy decoding: the most probable token at every step.

    Drives a decoder one step at a time through a `next` function with
    keras_hub's sampler protocol, `next(token_ids, cache, index) -> (logits,
    hidden_states, cache)`: `logits` `(B, V)` score the token at position
    `index` given `token_ids[:, :index]`, and `cache` (any nested structure
    of batch-first tensors: the decoder's key/value caches, the encoder
    outputs) carries what earlier steps computed, so each step feeds only the
    newest token. The loop is `keras_hub.samplers.GreedySampler`, which fits
    as it is; this class adds the end-of-sequence bookkeeping translation
    needs: the loop stops once every row has produced `end_token_id`, and
    positions after a row's end hold `pad_token_id`.

    Args:
        end_token_id: int. The token that ends a sequence. Defaults to
            `None`: generate to the end of the prompt.
        pad_token_id: int. Written after the end token and expected in the
            unused positions of the prompt. Must differ from
            `end_token_id`. Defaults to `0`.

    Call arguments:
        next: callable `(token_ids, cache, index) -> (logits, hidden_states,
            cache)`, as above.
        prompt: integer tensor `(B, L)`. Positions `< index` hold the prompt
            (at least a start token); `L` is the longest output.
        cache: optional nested structure of batch-first tensors. Defaults to
            `None`.
        index: int. The first position to generate. Defaults to `1`.
        model: optional `keras.Model` whose variables `next` reads; needed
            only to trace the loop statelessly under JAX. Defaults to `None`.

    Returns:
        Integer token ids `(B, L)`: the prompt, then the generated tokens.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_attention.generation import GreedySearch
    >>> def next(token_ids, cache, index):
    ...     # A toy decoder over 6 tokens: the next token is the previous one plus one.
    ...     previous = ops.slice(token_ids, [0, index - 1], [ops.shape(token_ids)[0], 1])[:, 0]
    ...     return ops.one_hot(ops.minimum(previous + 1, 5), 6), None, cache
    >>> prompt = np.array([[1, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0]])
    >>> ops.convert_to_numpy(GreedySearch(end_token_id=4)(next, prompt)).tolist()
    [[1, 2, 3, 4, 0, 0], [3, 4, 0, 0, 0, 0]]
    """

    def __init__(self, end_token_id=None, pad_token_id=0):
        self.end_token_id = validate_token_id("end_token_id", end_token_id, allow_none=True)
        self.pad_token_id = validate_token_id("pad_token_id", pad_token_id)
        if end_token_id is not None and end_token_id == pad_token_id:
            raise ValueError(
                "`end_token_id` and `pad_token_id` must differ: the padding after an end "
                f"would read as more ends. Received: both {end_token_id}."
            )
        self._sampler = keras_hub.samplers.GreedySampler()

    def __call__(self, next, prompt, cache=None, index=1, model=None):
        prompt = validate_prompt(prompt, index)
        length = ops.shape(prompt)[1]
        # The prompt's own positions are kept; the rest starts as padding, so
        # only tokens this search writes can count as an end.
        is_prompt = ops.broadcast_to(ops.arange(length) < index, ops.shape(prompt))  # [B, L]
        prompt = ops.where(is_prompt, prompt, ops.cast(self.pad_token_id, prompt.dtype))
        stop_token_ids = None if self.end_token_id is None else (self.end_token_id,)
        token_ids = self._sampler(
            next,
            prompt,
            cache=cache,
            index=index,
            mask=is_prompt,
            stop_token_ids=stop_token_ids,
            model=model,
        )
        if self.end_token_id is None:
            return token_ids
        return mask_after_end(token_ids, self.end_token_id, self.pad_token_id, index)

    def get_config(self):
        return {"end_token_id": self.end_token_id, "pad_token_id": self.pad_token_id}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
