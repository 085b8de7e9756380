"""Greedy search, beam search and random sampling over cached decoders (keras.ops, any backend)."""

import itertools

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.generation import BeamSearch, GreedySearch, RandomSampling
from keras_attention.generation.generation_utils import mask_after_end
from keras_attention.heads import LanguageModelHead
from keras_attention.layers import TokenAndPositionEmbedding, TransformerDecoder

PAD, START, END = 0, 1, 2


def markov_next(log_probs):
    """A toy decoder: the next token's log-probabilities depend on the previous token only."""
    table = ops.convert_to_tensor(log_probs.astype("float32"))

    def next(token_ids, cache, index):
        previous = ops.slice(token_ids, [0, index - 1], [ops.shape(token_ids)[0], 1])[:, 0]
        return ops.take(table, previous, axis=0), None, cache

    return next


def random_markov_table(vocabulary_size, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(vocabulary_size, vocabulary_size))
    logits[:, PAD] = logits[:, START] = -1e4  # Never produced.
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def prompt_of(batch_size, length):
    prompt = np.zeros((batch_size, length), "int32")
    prompt[:, 0] = START
    return prompt


def to_list(x):
    return ops.convert_to_numpy(x).tolist()


# === Cached decoding equals recomputing the prefix ===
class TinyDecoder:
    """A decoder-only Transformer (embedding, 2 cached `TransformerDecoder` blocks, tied head)."""

    def __init__(self, vocabulary_size=11, length=9, hidden_dim=16, num_heads=2):
        self.num_heads, self.head_dim = num_heads, hidden_dim // num_heads
        self.embedding = TokenAndPositionEmbedding(vocabulary_size, length, hidden_dim)
        self.blocks = [TransformerDecoder(32, num_heads, normalize_first=True) for _ in range(2)]
        self.head = LanguageModelHead(vocabulary_size, embedding=self.embedding)
        x = self.embedding(np.zeros((1, length), "int32"))
        for block in self.blocks:
            x = block(x)
        self.head(x)

    def full(self, token_ids):
        x = self.embedding(token_ids)
        for block in self.blocks:
            x = block(x)
        return self.head(x)  # [B, T, V]

    def empty_cache(self, batch_size, length):
        return ops.zeros((batch_size, len(self.blocks), 2, length, self.num_heads, self.head_dim))

    def next_cached(self, token_ids, cache, index):
        x = self.embedding(ops.slice(token_ids, [0, index - 1], [ops.shape(token_ids)[0], 1]), start_index=index - 1)
        caches = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, self_attention_cache=cache[:, i], self_attention_cache_update_index=index - 1)
            caches.append(layer_cache)
        return self.head(x)[:, 0], None, ops.stack(caches, axis=1)

    def next_uncached(self, token_ids, cache, index):
        # The whole sequence, every step: causal, so position index - 1 sees
        # the prefix only (a slice to the prefix would need dynamic shapes,
        # which JAX's while loop does not allow).
        return ops.take(self.full(token_ids), index - 1, axis=1), None, cache


def test_cached_greedy_equals_uncached_greedy():
    decoder = TinyDecoder()
    prompt = prompt_of(3, 9)
    prompt[1, 0] = 5  # Different first tokens give different outputs.
    prompt[2, 0] = 7
    search = GreedySearch()  # No end token: all 8 steps.
    cached = search(decoder.next_cached, prompt, cache=decoder.empty_cache(3, 9))
    uncached = search(decoder.next_uncached, prompt, cache=decoder.empty_cache(3, 9))
    assert to_list(cached) == to_list(uncached)
    # And the cached logits equal the full pass at every position.
    full = ops.convert_to_numpy(decoder.full(cached))
    cache = decoder.empty_cache(3, 9)
    for index in range(1, 9):
        logits, _, cache = decoder.next_cached(cached, cache, index)
        np.testing.assert_allclose(ops.convert_to_numpy(logits), full[:, index - 1], atol=1e-4)


def test_cached_beam_search_equals_uncached_beam_search():
    decoder = TinyDecoder()
    prompt = prompt_of(2, 9)
    prompt[1, 0] = 4
    search = BeamSearch(beam_width=3, end_token_id=END, return_all_beams=True)
    cached_ids, cached_scores = search(decoder.next_cached, prompt, cache=decoder.empty_cache(2, 9))
    uncached_ids, uncached_scores = search(decoder.next_uncached, prompt, cache=decoder.empty_cache(2, 9))
    assert to_list(cached_ids) == to_list(uncached_ids)
    np.testing.assert_allclose(ops.convert_to_numpy(cached_scores), ops.convert_to_numpy(uncached_scores), atol=1e-4)


# === Greedy search ===
def test_greedy_follows_the_argmax_and_pads_after_the_end():
    table = random_markov_table(6, seed=0)
    prompt = prompt_of(1, 8)
    expected, token = [START], START
    for _ in range(7):
        token = int(np.argmax(table[token]))
        expected.append(token)
    if END in expected[1:]:
        end = expected.index(END, 1)
        expected = expected[: end + 1] + [PAD] * (len(expected) - end - 1)
    assert to_list(GreedySearch(end_token_id=END)(markov_next(table), prompt)) == [expected]


def test_greedy_stops_when_every_row_has_ended():
    calls = []
    table = np.full((4, 4), -10.0, "float32")
    table[:, END] = 0.0

    def next(token_ids, cache, index):
        calls.append(1)
        return markov_next(table)(token_ids, cache, index)

    output = GreedySearch(end_token_id=END)(next, prompt_of(2, 50))
    assert to_list(output) == [[START, END] + [PAD] * 48] * 2
    if keras.backend.backend() != "jax":  # JAX traces the body once.
        assert len(calls) == 1


def test_greedy_keeps_the_prompt():
    table = random_markov_table(6, seed=1)
    prompt = prompt_of(1, 6)
    prompt[0, 1] = 5
    output = to_list(GreedySearch()(markov_next(table), prompt, index=2))
    assert output[0][:2] == [START, 5]
    assert output[0][2] == int(np.argmax(table[5]))


# === Beam search ===
def brute_force_best(table, length, alpha):
    """The best hypothesis by exhaustive search: ended sequences, and those cut at `length`."""
    vocabulary = range(table.shape[0])
    best, best_score = None, -np.inf
    for steps in range(1, length):
        for tokens in itertools.product(vocabulary, repeat=steps):
            ended = tokens[-1] == END
            if END in tokens[:-1] or (not ended and steps < length - 1):
                continue
            log_prob = sum(table[a, b] for a, b in zip((START,) + tokens[:-1], tokens))
            score = log_prob / ((5.0 + steps) / 6.0) ** alpha
            if score > best_score:
                best, best_score = [START, *tokens] + [PAD] * (length - 1 - steps), score
    return best, best_score


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_wide_beam_search_finds_the_exhaustive_best(alpha):
    table = random_markov_table(5, seed=3)
    best, best_score = brute_force_best(table, length=5, alpha=alpha)
    search = BeamSearch(beam_width=64, length_penalty=alpha, end_token_id=END, return_all_beams=True)
    ids, scores = search(markov_next(table), prompt_of(1, 5))
    assert to_list(ids)[0][0] == best
    np.testing.assert_allclose(ops.convert_to_numpy(scores)[0, 0], best_score, rtol=1e-5)


def test_beam_width_one_is_greedy():
    table = random_markov_table(7, seed=4)
    prompt = prompt_of(3, 10)
    prompt[1, 0], prompt[2, 0] = 4, 6
    greedy = GreedySearch(end_token_id=END)(markov_next(table), prompt)
    beam = BeamSearch(beam_width=1, length_penalty=0.0, end_token_id=END)(markov_next(table), prompt)
    assert to_list(beam) == to_list(greedy)


def test_beam_search_beats_greedy_on_a_garden_path():
    # After the start, 3 (0.6) beats 4 (0.4); but 4 is surely followed by the end,
    # and 3 by an even split: greedy takes 3, beam search finds "4 end".
    table = np.log(np.full((5, 5), 1e-9))
    table[START, 3], table[START, 4] = np.log(0.6), np.log(0.4)
    table[3, 3] = table[3, 4] = np.log(0.5)
    table[4, END] = 0.0
    prompt = prompt_of(1, 6)
    assert to_list(GreedySearch(end_token_id=END)(markov_next(table), prompt)) == [[1, 3, 3, 3, 3, 3]]
    assert to_list(BeamSearch(2, end_token_id=END)(markov_next(table), prompt)) == [[1, 4, 2, 0, 0, 0]]


def test_larger_length_penalty_never_gives_shorter_outputs():
    table = random_markov_table(6, seed=5)
    table[:, END] -= 1.5  # Make ends less likely, so that lengths vary.
    prompt = prompt_of(4, 9)
    prompt[:, 0] = [START, 3, 4, 5]
    lengths = []
    for alpha in (0.0, 1.0, 3.0):
        ids = ops.convert_to_numpy(BeamSearch(4, length_penalty=alpha, end_token_id=END)(markov_next(table), prompt))
        lengths.append((ids != PAD).sum(axis=1))
    assert np.all(lengths[1] >= lengths[0]) and np.all(lengths[2] >= lengths[1])


def test_beam_search_returns_sorted_beams():
    table = random_markov_table(6, seed=6)
    ids, scores = BeamSearch(3, end_token_id=END, return_all_beams=True)(markov_next(table), prompt_of(2, 7))
    scores = ops.convert_to_numpy(scores)
    assert tuple(ops.shape(ids)) == (2, 3, 7) and scores.shape == (2, 3)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_beam_search_reorders_the_cache_with_the_beams():
    # The cache holds the running sum of each beam's tokens; `next` reads the
    # sum from the cache in one version and recomputes it from the tokens in
    # the other. They agree only if the search moves each cache row with its beam.
    rng = np.random.default_rng(7)
    weights = ops.convert_to_tensor(rng.normal(size=(1, 6)).astype("float32"))
    bias = ops.convert_to_tensor(rng.normal(size=(6,)).astype("float32"))

    def logits_of(total):
        return ops.cast(ops.expand_dims(total, -1), "float32") * weights + bias

    def next_cached(token_ids, cache, index):
        previous = ops.slice(token_ids, [0, index - 1], [ops.shape(token_ids)[0], 1])[:, 0]
        total = cache["sum"] + ops.cast(previous, "float32")
        return ops.sin(logits_of(total)) * 3.0, None, {"sum": total}

    def next_uncached(token_ids, cache, index):
        mask = ops.arange(ops.shape(token_ids)[1]) < index
        total = ops.sum(ops.where(mask, ops.cast(token_ids, "float32"), 0.0), axis=1)
        return ops.sin(logits_of(total)) * 3.0, None, cache

    prompt = prompt_of(2, 8)
    prompt[1, 0] = 4
    search = BeamSearch(3, end_token_id=END)
    cached = search(next_cached, prompt, cache={"sum": ops.zeros((2,))})
    uncached = search(next_uncached, prompt, cache={"sum": ops.zeros((2,))})
    assert to_list(cached) == to_list(uncached)


# === Random sampling ===
def test_sampling_with_top_k_one_is_greedy():
    table = random_markov_table(7, seed=8)
    prompt = prompt_of(2, 8)
    greedy = GreedySearch(end_token_id=END)(markov_next(table), prompt)
    sampled = RandomSampling(top_k=1, seed=1, end_token_id=END)(markov_next(table), prompt)
    assert to_list(sampled) == to_list(greedy)


def test_sampling_draws_from_the_distribution():
    # Two tokens at 0.75 / 0.25 after the start: the first draws of 400 rows follow that.
    table = np.log(np.full((5, 5), 1e-9))
    table[START, 3], table[START, 4] = np.log(0.75), np.log(0.25)
    table[3, END] = table[4, END] = 0.0
    ids = ops.convert_to_numpy(RandomSampling(seed=3, end_token_id=END)(markov_next(table), prompt_of(400, 4)))
    share = float(np.mean(ids[:, 1] == 3))
    assert 0.65 < share < 0.85
    assert set(ids[:, 2].tolist()) == {END} and set(ids[:, 3].tolist()) == {PAD}


def test_top_p_keeps_the_nucleus_only():
    table = np.log(np.full((6, 6), 1e-9))
    table[START, 3], table[START, 4], table[START, 5] = np.log(0.6), np.log(0.3), np.log(0.1)
    table[3:, END] = 0.0
    ids = ops.convert_to_numpy(RandomSampling(top_p=0.85, seed=0, end_token_id=END)(markov_next(table), prompt_of(200, 3)))
    assert set(ids[:, 1].tolist()) <= {3, 4}


# === Helpers, configs and errors ===
def test_mask_after_end():
    ids = np.array([[1, 2, 5, 2], [1, 5, 5, 5], [2, 4, 2, 6]])
    assert to_list(mask_after_end(ids, 2, 0, index=1)) == [[1, 2, 0, 0], [1, 5, 5, 5], [2, 4, 2, 0]]


@pytest.mark.parametrize(
    "search",
    [GreedySearch(end_token_id=3, pad_token_id=1),
     BeamSearch(beam_width=5, length_penalty=1.2, end_token_id=3, return_all_beams=True),
     RandomSampling(temperature=0.7, top_k=10, top_p=0.9, seed=4, end_token_id=3)],
    ids=lambda s: type(s).__name__,
)
def test_config_round_trip(search):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(search))
    assert type(restored) is type(search)
    assert restored.get_config() == search.get_config()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GreedySearch(end_token_id=0, pad_token_id=0), "must differ"),
        (lambda: GreedySearch(end_token_id=-1), "non-negative integer"),
        (lambda: BeamSearch(beam_width=0), "beam_width"),
        (lambda: BeamSearch(length_penalty="long"), "length_penalty"),
        (lambda: BeamSearch(end_token_id=2, pad_token_id=2), "must differ"),
        (lambda: RandomSampling(temperature=0), "temperature"),
        (lambda: RandomSampling(top_k=0), "top_k"),
        (lambda: RandomSampling(top_p=1.5), "top_p"),
        (lambda: RandomSampling(end_token_id=4, pad_token_id=4), "must differ"),
    ],
)
def test_argument_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("search", [GreedySearch(), BeamSearch(2), RandomSampling(seed=0)], ids=lambda s: type(s).__name__)
def test_prompt_errors(search):
    next = markov_next(random_markov_table(4, seed=0))
    with pytest.raises(ValueError, match=r"shape \(B, L\)"):
        search(next, np.zeros((5,), "int32"))
    with pytest.raises(ValueError, match="smaller than the prompt length"):
        search(next, prompt_of(1, 3), index=3)
    with pytest.raises(ValueError, match="positive integer"):
        search(next, prompt_of(1, 3), index=0)
