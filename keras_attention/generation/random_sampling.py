"""Random sampling (plain, top-k or nucleus) over a cached decoder."""

import keras
import keras_hub
from keras import ops

from keras_attention.generation.generation_utils import mask_after_end
from keras_attention.generation.generation_utils import validate_prompt
from keras_attention.generation.generation_utils import validate_token_id


@keras.saving.register_keras_serializable(package="keras_attention")
class RandomSampling:
    """Draw each token at random from the decoder's distribution.

    For diverse outputs (back-translation, data augmentation, stories)
    rather than the single most probable one. The distribution is sharpened
    or flattened by `temperature` and may be cut to its `top_k` most probable
    tokens, or to the smallest set whose probability reaches `top_p`
    (nucleus sampling). The loops are keras_hub's samplers
    (`RandomSampler`, `TopKSampler`, `TopPSampler`), which fit as they are;
    this class picks one from the arguments and adds the end-of-sequence
    bookkeeping of `GreedySearch`, whose protocol for `next` it shares.

    Args:
        temperature: float. Divides the logits; below 1 sharpens, above 1
            flattens. Defaults to `1.0`.
        top_k: int. Sample among the `top_k` most probable tokens only.
            Defaults to `None` (no cut).
        top_p: float in (0, 1]. Sample within the smallest set of tokens
            whose probabilities sum to `top_p`; with `top_k` too, that set is
            searched among the `top_k` most probable. Defaults to `None`.
        seed: int. Seed of the draws. Defaults to `None`.
        end_token_id: int. The token that ends a sequence. Defaults to
            `None`: generate to the end of the prompt.
        pad_token_id: int. Written after the end token. Must differ from
            `end_token_id`. Defaults to `0`.

    Call arguments:
        next: callable `(token_ids, cache, index) -> (logits, hidden_states,
            cache)`.
        prompt: integer tensor `(B, L)`; positions `< index` hold the prompt.
        cache: optional nested structure of batch-first tensors. Defaults to
            `None`.
        index: int. The first position to generate. Defaults to `1`.
        model: optional `keras.Model` whose variables `next` reads (JAX).
            Defaults to `None`.

    Returns:
        Integer token ids `(B, L)`: the prompt, then the sampled tokens.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_attention.generation import RandomSampling
    >>> def next(token_ids, cache, index):
    ...     # Tokens {0: pad, 1: start, 2: end, 3, 4}: 3 then the end, almost surely.
    ...     first = np.array([-50.0, -50.0, -50.0, 9.0, -9.0], dtype="float32")
    ...     then = np.array([-50.0, -50.0, 9.0, -9.0, -9.0], dtype="float32")
    ...     logits = ops.where(index == 1, first, then)
    ...     return ops.tile(logits[None, :], (ops.shape(token_ids)[0], 1)), None, cache
    >>> sampling = RandomSampling(top_k=2, seed=0, end_token_id=2)
    >>> ops.convert_to_numpy(sampling(next, np.array([[1, 0, 0, 0]]))).tolist()
    [[1, 3, 2, 0]]

    References:
        - [Fan et al., 2018](https://arxiv.org/abs/1805.04833) (top-k)
        - [Holtzman et al., 2020](https://arxiv.org/abs/1904.09751) (nucleus)
    """

    def __init__(
        self,
        temperature=1.0,
        top_k=None,
        top_p=None,
        seed=None,
        end_token_id=None,
        pad_token_id=0,
    ):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(f"`temperature` must be a positive number. Received: temperature={temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"`top_k` must be a positive integer or None. Received: top_k={top_k!r}")
        if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                                  or not 0 < top_p <= 1):
            raise ValueError(f"`top_p` must be a number in (0, 1] or None. Received: top_p={top_p!r}")
        self.temperature = float(temperature)
        self.top_k = top_k
        self.top_p = None if top_p is None else float(top_p)
        self.seed = seed
        self.end_token_id = validate_token_id("end_token_id", end_token_id, allow_none=True)
        self.pad_token_id = validate_token_id("pad_token_id", pad_token_id)
        if end_token_id is not None and end_token_id == pad_token_id:
            raise ValueError(
                "`end_token_id` and `pad_token_id` must differ: the padding after an end "
                f"would read as more ends. Received: both {end_token_id}."
            )
        if self.top_p is not None:
            self._sampler = keras_hub.samplers.TopPSampler(
                p=self.top_p, k=top_k, seed=seed, temperature=self.temperature
            )
        elif top_k is not None:
            self._sampler = keras_hub.samplers.TopKSampler(k=top_k, seed=seed, temperature=self.temperature)
        else:
            self._sampler = keras_hub.samplers.RandomSampler(seed=seed, temperature=self.temperature)

    def __call__(self, next, prompt, cache=None, index=1, model=None):
        prompt = validate_prompt(prompt, index)
        length = ops.shape(prompt)[1]
        is_prompt = ops.broadcast_to(ops.arange(length) < index, ops.shape(prompt))  # [B, L]
        prompt = ops.where(is_prompt, prompt, ops.cast(self.pad_token_id, prompt.dtype))
        stop_token_ids = None if self.end_token_id is None else (self.end_token_id,)
        token_ids = self._sampler(
            next, prompt, cache=cache, index=index, mask=is_prompt, stop_token_ids=stop_token_ids, model=model
        )
        if self.end_token_id is None:
            return token_ids
        return mask_after_end(token_ids, self.end_token_id, self.pad_token_id, index)

    def get_config(self):
        return {
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "seed": self.seed,
            "end_token_id": self.end_token_id,
            "pad_token_id": self.pad_token_id,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
