"""TransformerDecoder: the harness, equivalence with keras_hub, caches, masks, errors."""

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import TransformerDecoder
from tests.harness import run_layer_test

B, T, S, DIM, HEADS = 2, 5, 6, 8, 2
DECODER_PADDING = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
ENCODER_PADDING = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)


def random(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def numpy(x):
    return ops.convert_to_numpy(x)


def masked(padding, seed=0):
    """A tensor carrying `padding` as its Keras mask (via `Embedding(mask_zero=True)`)."""
    ids = np.where(padding, np.arange(1, padding.shape[1] + 1), 0)
    embedding = keras.layers.Embedding(10, DIM, mask_zero=True)
    embedding.build((None, None))
    embedding.set_weights([random(10, DIM, seed=seed)])
    return embedding(ids)


# === The shared harness ===


def test_harness_decoder_only():
    run_layer_test(
        TransformerDecoder,
        {"intermediate_dim": 16, "num_heads": HEADS, "dropout": 0.1},
        random(B, T, DIM),
        expected_output_shape=(B, T, DIM),
        expected_num_trainable_weights=16,
    )


def test_harness_cross_attention_masks_and_scores():
    run_layer_test(
        TransformerDecoder,
        {"intermediate_dim": 16, "num_heads": 4, "num_key_value_heads": 2, "normalize_first": True},
        {
            "decoder_sequence": random(B, T, DIM),
            "encoder_sequence": random(B, S, DIM, seed=1),
            "decoder_padding_mask": DECODER_PADDING,
            "encoder_padding_mask": ENCODER_PADDING,
        },
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=((B, T, DIM), (B, 4, T, T), (B, 4, T, S)),
        expected_num_trainable_weights=26,
    )


# === Equivalence with keras_hub.layers.TransformerDecoder ===


def keras_hub_pair(normalize_first, cross_attention=True):
    reference = keras_hub.layers.TransformerDecoder(16, HEADS, normalize_first=normalize_first)
    ours = TransformerDecoder(16, HEADS, normalize_first=normalize_first)
    encoder_shape = (None, S, DIM) if cross_attention else None
    reference.build((None, T, DIM), encoder_shape)
    ours.build((None, T, DIM), encoder_shape)
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [
        w.path.split("/", 1)[1] for w in reference.weights
    ]
    # Non-trivial layer norms, so that a swapped pair would show.
    ours.set_weights([w + random(*w.shape, seed=i) * 0.1 for i, w in enumerate(reference.get_weights())])
    reference.set_weights(ours.get_weights())
    return reference, ours


@pytest.mark.parametrize("normalize_first", [False, True])
def test_same_weights_and_outputs_as_keras_hub(normalize_first):
    reference, ours = keras_hub_pair(normalize_first)
    x, encoder = random(B, T, DIM), random(B, S, DIM, seed=1)
    np.testing.assert_allclose(numpy(ours(x, encoder)), numpy(reference(x, encoder)), atol=1e-5)
    masks = {"decoder_padding_mask": DECODER_PADDING, "encoder_padding_mask": ENCODER_PADDING}
    got, expected = numpy(ours(x, encoder, **masks)), numpy(reference(x, encoder, **masks))
    # Padded decoder positions differ (ours give them zero self-attention).
    np.testing.assert_allclose(got[DECODER_PADDING], expected[DECODER_PADDING], atol=1e-5)
    # One cached step from the same caches gives the same outputs and caches.
    self_cache, cross_cache = random(B, 2, T, HEADS, 4, seed=2), random(B, 2, S, HEADS, 4, seed=3)
    step = dict(
        self_attention_cache=self_cache,
        self_attention_cache_update_index=2,
        cross_attention_cache=cross_cache,
        cross_attention_cache_update_index=None,
    )
    for a, b in zip(ours(x[:, 2:3], encoder, **step), reference(x[:, 2:3], encoder, **step)):
        np.testing.assert_allclose(numpy(a), numpy(b), atol=1e-5)


def test_same_outputs_as_keras_hub_without_cross_attention():
    reference, ours = keras_hub_pair(normalize_first=False, cross_attention=False)
    x = random(B, T, DIM)
    np.testing.assert_allclose(numpy(ours(x)), numpy(reference(x)), atol=1e-5)


# === Incremental decoding ===


@pytest.mark.parametrize(
    "kwargs, cross_attention",
    [({}, False), ({"normalize_first": True, "num_key_value_heads": 1}, True)],
    ids=["decoder_only", "cross_attention_mqa_pre_norm"],
)
def test_cached_decoding_equals_full_causal_pass(kwargs, cross_attention):
    decoder = TransformerDecoder(16, HEADS, **kwargs)
    x = random(B, T, DIM)
    encoder = random(B, S, DIM, seed=1) if cross_attention else None
    expected = decoder(x, encoder, return_attention_scores=True)
    num_key_value_heads = kwargs.get("num_key_value_heads", HEADS)
    self_cache = np.zeros((B, 2, T, num_key_value_heads, DIM // HEADS), "float32")
    cross_cache = None
    if cross_attention:
        cross_cache = np.zeros((B, 2, S, num_key_value_heads, DIM // HEADS), "float32")
    steps, self_scores = [], []
    for index in range(T):
        outputs = decoder(
            x[:, index : index + 1],
            encoder,
            self_attention_cache=self_cache,
            self_attention_cache_update_index=index,
            cross_attention_cache=cross_cache,
            # Fill the cross-attention cache once, then reuse it.
            cross_attention_cache_update_index=0 if index == 0 else None,
            return_attention_scores=True,
        )
        if cross_attention:
            output, scores, cross_scores, self_cache, cross_cache = outputs
            expected_cross_scores = numpy(expected[2])[:, :, index]
            np.testing.assert_allclose(numpy(cross_scores)[:, :, 0], expected_cross_scores, atol=1e-5)
        else:
            output, scores, self_cache = outputs
        steps.append(numpy(output))
        self_scores.append(numpy(scores)[:, :, 0])
    np.testing.assert_allclose(np.concatenate(steps, axis=1), numpy(expected[0]), atol=1e-5)
    np.testing.assert_allclose(np.stack(self_scores, axis=2), numpy(expected[1]), atol=1e-5)


def test_cached_decoding_with_padding_equals_full_pass_on_real_tokens():
    decoder = TransformerDecoder(16, HEADS)
    x = random(B, T, DIM)
    expected = numpy(decoder(x, decoder_padding_mask=DECODER_PADDING))
    cache = np.zeros((B, 2, T, HEADS, DIM // HEADS), "float32")
    steps = []
    for index in range(T):
        output, cache = decoder(
            x[:, index : index + 1],
            decoder_padding_mask=DECODER_PADDING[:, index : index + 1],
            self_attention_cache=cache,
            self_attention_cache_update_index=index,
        )
        steps.append(numpy(output))
    got = np.concatenate(steps, axis=1)
    np.testing.assert_allclose(got[DECODER_PADDING], expected[DECODER_PADDING], atol=1e-5)


# === Masks and causality ===


def test_causal_outputs_ignore_the_future():
    decoder = TransformerDecoder(16, HEADS)
    x = random(B, T, DIM)
    before = numpy(decoder(x))
    _, scores = decoder(x, return_attention_scores=True)
    assert np.all(np.triu(numpy(scores), k=1) == 0)
    x[:, 3:] = random(B, T - 3, DIM, seed=4)
    after = numpy(decoder(x))
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-6)
    # Without the causal mask every position sees the changed ones.
    assert not np.allclose(numpy(decoder(x, use_causal_mask=False))[:, :3], before[:, :3])


def test_padding_changes_no_other_position():
    decoder = TransformerDecoder(16, HEADS)
    x, encoder = random(B, T, DIM), random(B, S, DIM, seed=1)
    masks = {"decoder_padding_mask": DECODER_PADDING, "encoder_padding_mask": ENCODER_PADDING}
    before = numpy(decoder(x, encoder, **masks))
    x[~DECODER_PADDING] = 50.0
    encoder[~ENCODER_PADDING] = 50.0
    after = numpy(decoder(x, encoder, **masks))
    np.testing.assert_allclose(after[DECODER_PADDING], before[DECODER_PADDING], atol=1e-5)


def test_implicit_masks_equal_explicit_masks():
    decoder = TransformerDecoder(16, HEADS)
    x, encoder = masked(DECODER_PADDING), masked(ENCODER_PADDING, seed=1)
    implicit = decoder(x, encoder, return_attention_scores=True)
    explicit = decoder(
        numpy(x),
        numpy(encoder),
        decoder_padding_mask=DECODER_PADDING,
        encoder_padding_mask=ENCODER_PADDING,
        return_attention_scores=True,
    )
    for a, b in zip(implicit, explicit):
        np.testing.assert_allclose(numpy(a), numpy(b), atol=1e-6)


# === Errors ===


def test_errors():
    with pytest.raises(ValueError, match="num_key_value_heads=3"):
        TransformerDecoder(16, 4, num_key_value_heads=3)
    with pytest.raises(ValueError, match="hidden_dim=8 must be at least num_heads=16"):
        TransformerDecoder(16, 16)(random(B, T, DIM))
    x, encoder = random(B, T, DIM), random(B, S, DIM, seed=1)
    decoder_only = TransformerDecoder(16, HEADS)
    decoder_only(x)
    with pytest.raises(ValueError, match="built without cross-attention, but received an `encoder_sequence`"):
        decoder_only(x, encoder)
    with pytest.raises(ValueError, match="`cross_attention_cache` was given"):
        decoder_only(
            x[:, :1],
            self_attention_cache=np.zeros((B, 2, T, HEADS, 4), "float32"),
            self_attention_cache_update_index=0,
            cross_attention_cache=np.zeros((B, 2, S, HEADS, 4), "float32"),
        )
    with pytest.raises(ValueError, match=r"`decoder_padding_mask` must have shape \(B, T\)"):
        decoder_only(x, decoder_padding_mask=np.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match=r"cache.shape=\(2, 2, 5, 3, 4\)"):
        decoder_only(
            x[:, :1],
            self_attention_cache=np.zeros((B, 2, T, 3, 4), "float32"),
            self_attention_cache_update_index=0,
        )
    decoder = TransformerDecoder(16, HEADS)
    decoder(x, encoder)
    with pytest.raises(ValueError, match="built with cross-attention, but received no `encoder_sequence`"):
        decoder(x)
    with pytest.raises(ValueError, match="must both be set or both be None"):
        decoder(
            x[:, :1],
            encoder,
            self_attention_cache=np.zeros((B, 2, T, HEADS, 4), "float32"),
            self_attention_cache_update_index=0,
        )
    with pytest.raises(ValueError, match=r"encoder_padding_mask.shape=\(2, 5\)"):
        decoder(x, encoder, encoder_padding_mask=np.ones((B, S - 1), bool))
    with pytest.raises(ValueError, match=r"`encoder_attention_mask` must have shape \(B, T, S_enc\)"):
        decoder(x, encoder, encoder_attention_mask=np.ones((B, T, S + 1), bool))
