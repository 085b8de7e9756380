"""Beam search with a length penalty over a cached decoder."""

import keras
import keras_hub
from keras import ops
from keras import tree

from keras_attention.generation.generation_utils import validate_prompt
from keras_attention.generation.generation_utils import validate_token_id

# The score of an empty slot: finite, so that sums and divisions stay finite
# (-inf - -inf is NaN), and far below any sum of 1,000 float32 log-probabilities.
NEGATIVE_SCORE = -1e9


@keras.saving.register_keras_serializable(package="keras_attention")
class BeamSearch:
    """Beam search: keep the `beam_width` best partial outputs at every step.

    At each step every live beam is extended by every token; the best
    `2 * beam_width` extensions are split into those that produced
    `end_token_id`, which join a pool of finished hypotheses scored with the
    length penalty of Wu et al. (2016), `log p(y) / ((5 + |y|) / 6) ** alpha`,
    and the others, of which the best `beam_width` stay alive. The search
    stops when no live beam can still beat the finished ones (or at the end
    of the prompt), and returns the best finished hypothesis; live beams cut
    at the maximum length compete with the same penalty. This is the
    alive/finished search of tensor2tensor and fairseq.

    `keras_hub.samplers.BeamSampler` does not fit translation, so the search
    is written here (with keras_hub's loop runner, `Sampler.run_loop`, which
    handles JAX's stateless tracing): it has no length penalty, and a beam
    that produced the end token keeps being extended and ranked by the raw
    sum of log-probabilities of whatever follows, so short and long outputs
    are compared unfairly and it cannot stop when every beam has ended.

    `next` follows keras_hub's sampler protocol, `next(token_ids, cache,
    index) -> (logits, hidden_states, cache)` (see `GreedySearch`). The batch
    axis of `token_ids` and of every cache tensor is `B * beam_width`,
    example-major (the beams of example 0 first); the search reorders the
    cache when beams are reordered. Put everything per-example that `next`
    needs (encoder outputs, their padding mask) in `cache`, so it follows.

    Args:
        beam_width: int. The number of beams `K`. `1` is greedy search.
            Defaults to `4`.
        length_penalty: float. `alpha`: `0` ranks by total log-probability
            (favours short outputs); larger values favour longer ones.
            Defaults to `0.6`.
        end_token_id: int. The token that ends a hypothesis. Defaults to
            `None`: every hypothesis runs to the end of the prompt.
        pad_token_id: int. Written after the end token. Must differ from
            `end_token_id`. Defaults to `0`.
        return_all_beams: bool. Return every finished beam and its score
            rather than the best one. Defaults to `False`.

    Call arguments:
        next: callable `(token_ids, cache, index) -> (logits, hidden_states,
            cache)`.
        prompt: integer tensor `(B, L)`. Positions `< index` hold the prompt
            (at least a start token); `L` is the longest output.
        cache: optional nested structure of tensors with batch axis `B`;
            the search repeats them for the beams. Defaults to `None`.
        index: int. The first position to generate. Defaults to `1`.
        model: optional `keras.Model` whose variables `next` reads; needed
            only to trace the loop statelessly under JAX. Defaults to `None`.

    Returns:
        Integer token ids `(B, L)`, the best hypothesis of each example; with
        `return_all_beams=True`, a tuple of the beams `(B, K, L)` and their
        penalized scores `(B, K)`, best first.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_attention.generation import BeamSearch, GreedySearch
    >>> # A toy decoder over tokens {0: pad, 1: start, 2: end, 3, 4}: after the
    >>> # start, token 3 is likelier than 4 (0.6 against 0.4), but 4 is always
    >>> # followed by the end, and 3 by an even split between 3 and 4.
    >>> table = np.log(np.array([
    ...     [1e-9, 1e-9, 1e-9, 0.6, 0.4],   # after start
    ...     [1e-9, 1e-9, 1e-9, 0.5, 0.5],   # after 3
    ...     [1e-9, 1e-9, 1.0, 1e-9, 1e-9],  # after 4
    ... ]), dtype="float32")
    >>> def next(token_ids, cache, index):
    ...     previous = ops.slice(token_ids, [0, index - 1], [ops.shape(token_ids)[0], 1])[:, 0]
    ...     row = ops.where(previous == 1, 0, ops.where(previous == 3, 1, 2))
    ...     return ops.take(table, row, axis=0), None, cache
    >>> prompt = np.array([[1, 0, 0, 0, 0]])
    >>> ops.convert_to_numpy(GreedySearch(end_token_id=2)(next, prompt)).tolist()
    [[1, 3, 3, 3, 3]]
    >>> ops.convert_to_numpy(BeamSearch(beam_width=2, end_token_id=2)(next, prompt)).tolist()
    [[1, 4, 2, 0, 0]]

    References:
        - [Wu et al., 2016](https://arxiv.org/abs/1609.08144) (length penalty)
        - [Vaswani et al., 2018](https://arxiv.org/abs/1803.07416)
          (tensor2tensor's beam search)
    """

    def __init__(
        self,
        beam_width=4,
        length_penalty=0.6,
        end_token_id=None,
        pad_token_id=0,
        return_all_beams=False,
    ):
        if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
            raise ValueError(f"`beam_width` must be a positive integer. Received: beam_width={beam_width!r}")
        if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
            raise ValueError(
                f"`length_penalty` must be a number (0 for none). Received: length_penalty={length_penalty!r}"
            )
        self.beam_width = beam_width
        self.length_penalty = float(length_penalty)
        self.end_token_id = validate_token_id("end_token_id", end_token_id, allow_none=True)
        self.pad_token_id = validate_token_id("pad_token_id", pad_token_id)
        if end_token_id is not None and end_token_id == pad_token_id:
            raise ValueError(
                "`end_token_id` and `pad_token_id` must differ: the padding after an end "
                f"would read as more ends. Received: both {end_token_id}."
            )
        self.return_all_beams = bool(return_all_beams)
        self._runner = keras_hub.samplers.Sampler()

    def _penalty(self, generated_length):
        """GNMT's `((5 + |y|) / 6) ** alpha` for outputs of `generated_length` tokens."""
        generated_length = ops.cast(generated_length, "float32")
        return ops.power((5.0 + generated_length) / 6.0, self.length_penalty)

    def __call__(self, next, prompt, cache=None, index=1, model=None):
        prompt = validate_prompt(prompt, index)
        beams = self.beam_width
        length = ops.shape(prompt)[1]
        start = index
        positions = ops.arange(length)  # [L]
        prompt = ops.where(positions < start, prompt, ops.cast(self.pad_token_id, prompt.dtype))

        def unflatten(x):  # [B * K, ...] -> [B, K, ...]
            return ops.reshape(x, (-1, beams) + tuple(ops.shape(x)[1:]))

        def flatten(x):  # [B, K, ...] -> [B * K, ...]
            return ops.reshape(x, (-1,) + tuple(ops.shape(x)[2:]))

        def gather_beams(x, beam_indices):  # x [B, C, ...], beam_indices [B, K]
            indices = beam_indices
            for _ in range(len(x.shape) - 2):
                indices = ops.expand_dims(indices, -1)
            return ops.take_along_axis(x, indices, axis=1)

        alive_ids = ops.repeat(ops.expand_dims(prompt, 1), beams, axis=1)  # [B, K, L]
        # Only the first beam is live at the start; the others are copies.
        first_only = ops.convert_to_tensor([0.0] + [NEGATIVE_SCORE] * (beams - 1), "float32")
        alive_scores = ops.zeros_like(alive_ids[:, :, 0], dtype="float32") + first_only  # [B, K]
        finished_ids = alive_ids  # [B, K, L]
        finished_scores = ops.full_like(alive_scores, NEGATIVE_SCORE)  # [B, K]
        has_cache = cache is not None
        cache = tree.map_structure(lambda x: ops.repeat(x, beams, axis=0), cache) if has_cache else ()
        max_penalty = self._penalty(length - start)

        def cond(index, alive_ids, alive_scores, finished_ids, finished_scores, cache):
            if self.end_token_id is None:
                return ops.convert_to_tensor(True)
            # Log-probabilities only fall as a beam grows, so the best live beam
            # can at most reach its score over the largest penalty ahead.
            penalty = ops.maximum(self._penalty(index - start + 1), max_penalty)
            best_alive = alive_scores[:, 0] / penalty  # [B]
            # To change the answer a live beam must beat the best finished one,
            # or, when every beam is returned, the worst.
            target = finished_scores[:, -1] if self.return_all_beams else finished_scores[:, 0]
            return ops.any(best_alive > target)

        def body(index, alive_ids, alive_scores, finished_ids, finished_scores, cache):
            logits, _, cache = next(flatten(alive_ids), cache, index)
            vocabulary_size = ops.shape(logits)[-1]
            log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)  # [B * K, V]
            candidates = ops.expand_dims(alive_scores, -1) + unflatten(log_probs)  # [B, K, V]
            candidates = ops.reshape(candidates, (-1, beams * vocabulary_size))  # [B, K * V]
            # 2K candidates hold at least K that did not end (one end per beam).
            scores, flat_indices = ops.top_k(candidates, k=2 * beams)  # [B, 2K]
            source_beams = flat_indices // vocabulary_size  # [B, 2K]
            tokens = ops.cast(flat_indices % vocabulary_size, alive_ids.dtype)  # [B, 2K]
            candidate_ids = gather_beams(alive_ids, source_beams)  # [B, 2K, L]
            candidate_ids = ops.where(positions == index, ops.expand_dims(tokens, -1), candidate_ids)
            if self.end_token_id is None:
                ended = ops.zeros_like(tokens, dtype="bool")
            else:
                ended = ops.equal(tokens, self.end_token_id)  # [B, 2K]

            alive_scores, picked = ops.top_k(ops.where(ended, NEGATIVE_SCORE, scores), k=beams)  # [B, K]
            alive_ids = gather_beams(candidate_ids, picked)  # [B, K, L]
            if has_cache:
                parents = ops.take_along_axis(source_beams, picked, axis=1)  # [B, K]
                cache = tree.map_structure(lambda x: flatten(gather_beams(unflatten(x), parents)), cache)

            penalized = ops.where(ended, scores / self._penalty(index - start + 1), NEGATIVE_SCORE)
            pool_scores = ops.concatenate([finished_scores, penalized], axis=1)  # [B, 3K]
            pool_ids = ops.concatenate([finished_ids, candidate_ids], axis=1)  # [B, 3K, L]
            finished_scores, picked = ops.top_k(pool_scores, k=beams)  # [B, K]
            finished_ids = gather_beams(pool_ids, picked)  # [B, K, L]
            return index + 1, alive_ids, alive_scores, finished_ids, finished_scores, cache

        index, alive_ids, alive_scores, finished_ids, finished_scores, _ = self._runner.run_loop(
            cond,
            body,
            model=model,
            loop_vars=(ops.convert_to_tensor(start, "int32"), alive_ids, alive_scores,
                       finished_ids, finished_scores, cache),
            maximum_iterations=length - start,
        )
        # Live beams cut at the maximum length (or dominated at an early stop)
        # compete with the finished ones under the same penalty.
        alive_scores = alive_scores / self._penalty(index - start)
        pool_scores = ops.concatenate([finished_scores, alive_scores], axis=1)  # [B, 2K]
        pool_ids = ops.concatenate([finished_ids, alive_ids], axis=1)  # [B, 2K, L]
        scores, picked = ops.top_k(pool_scores, k=beams)  # [B, K]
        token_ids = gather_beams(pool_ids, picked)  # [B, K, L]
        if self.return_all_beams:
            return token_ids, scores
        return token_ids[:, 0]

    def get_config(self):
        return {
            "beam_width": self.beam_width,
            "length_penalty": self.length_penalty,
            "end_token_id": self.end_token_id,
            "pad_token_id": self.pad_token_id,
            "return_all_beams": self.return_all_beams,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
