"""TransformerEncoder: the harness, equivalence with keras_hub, masks, errors."""

import os
import tempfile

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import TransformerEncoder
from tests.harness import run_layer_test

B, T, DIM = 2, 5, 8
IDS = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
PADDING = IDS > 0


def random(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def numpy(x):
    return ops.convert_to_numpy(x)


def masked(ids=IDS, seed=0):
    """Embed token ids with `mask_zero=True`: a tensor carrying a Keras mask."""
    embedding = keras.layers.Embedding(10, DIM, mask_zero=True)
    embedding.build((None, None))
    embedding.set_weights([random(10, DIM, seed=seed)])
    return embedding(np.asarray(ids))


def test_harness_post_norm_with_padding_mask():
    run_layer_test(
        TransformerEncoder,
        {"intermediate_dim": 16, "num_heads": 2, "dropout": 0.1},
        {"inputs": random(B, T, DIM), "padding_mask": PADDING},
        expected_output_shape=(B, T, DIM),
        expected_num_trainable_weights=16,
    )


def test_harness_pre_norm_grouped_heads_with_scores():
    run_layer_test(
        TransformerEncoder,
        {
            "intermediate_dim": 16,
            "num_heads": 4,
            "normalize_first": True,
            "num_key_value_heads": 2,
            "activation": "gelu",
        },
        random(B, T, DIM),
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=((B, T, DIM), (B, 4, T, T)),
        expected_num_trainable_weights=16,
    )


def keras_hub_pair(normalize_first):
    reference = keras_hub.layers.TransformerEncoder(16, 2, normalize_first=normalize_first)
    ours = TransformerEncoder(16, 2, normalize_first=normalize_first)
    reference.build((None, T, DIM))
    ours.build((None, T, DIM))
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
    x = random(B, T, DIM)
    attention_mask = random(B, T, T, seed=3) > -0.5
    np.testing.assert_allclose(numpy(ours(x)), numpy(reference(x)), atol=1e-5)
    got, got_scores = ours(x, attention_mask=attention_mask, return_attention_scores=True)
    expected, expected_scores = reference(x, attention_mask=attention_mask, return_attention_scores=True)
    np.testing.assert_allclose(numpy(got), numpy(expected), atol=1e-5)
    np.testing.assert_allclose(numpy(got_scores), numpy(expected_scores), atol=1e-5)
    # Padding masks agree on the real positions. The padded ones (whose
    # outputs are meaningless) differ: ours give padded queries zero
    # attention, keras_hub's attend every real key (explicit mask: keys
    # only) or go through keras's fused kernel, which fills fully masked
    # rows differently (implicit mask).
    for got, expected in (
        (ours(x, padding_mask=PADDING), reference(x, padding_mask=PADDING)),
        (ours(masked()), reference(masked())),
    ):
        np.testing.assert_allclose(numpy(got)[PADDING], numpy(expected)[PADDING], atol=1e-5)


def test_loads_keras_hub_weight_files():
    reference, _ = keras_hub_pair(normalize_first=False)
    ours = TransformerEncoder(16, 2)
    ours.build((None, T, DIM))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "encoder.weights.h5")
        keras.Sequential([keras.Input((T, DIM)), reference]).save_weights(path)
        keras.Sequential([keras.Input((T, DIM)), ours]).load_weights(path)
    x = random(B, T, DIM)
    np.testing.assert_allclose(numpy(ours(x)), numpy(reference(x)), atol=1e-5)


def test_implicit_mask_equals_explicit_mask_and_explicit_wins():
    encoder = TransformerEncoder(16, 2, normalize_first=True)
    explicit = numpy(encoder(numpy(masked()), padding_mask=PADDING))
    np.testing.assert_allclose(numpy(encoder(masked())), explicit, atol=1e-6)
    other = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], bool)
    np.testing.assert_allclose(
        numpy(encoder(masked(), padding_mask=other)),
        numpy(encoder(numpy(masked()), padding_mask=other)),
        atol=1e-6,
    )


def test_padding_changes_no_other_position():
    encoder = TransformerEncoder(16, 2)
    x = random(B, T, DIM)
    before = numpy(encoder(x, padding_mask=PADDING))
    x[~PADDING] = 50.0
    after = numpy(encoder(x, padding_mask=PADDING))
    np.testing.assert_allclose(after[PADDING], before[PADDING], atol=1e-5)


def test_errors():
    for kwargs, match in (
        ({"intermediate_dim": 0, "num_heads": 2}, "intermediate_dim=0"),
        ({"intermediate_dim": 8, "num_heads": 0}, "num_heads=0"),
        ({"intermediate_dim": 8, "num_heads": 4, "num_key_value_heads": 3}, "num_key_value_heads=3"),
        ({"intermediate_dim": 8, "num_heads": 4, "dropout": -0.1}, "dropout"),
    ):
        with pytest.raises(ValueError, match=match):
            TransformerEncoder(**kwargs)
    with pytest.raises(ValueError, match="hidden_dim=8 must be at least num_heads=16"):
        TransformerEncoder(8, 16)(random(B, T, DIM))
    encoder = TransformerEncoder(16, 2)
    x = random(B, T, DIM)
    with pytest.raises(ValueError, match=r"`padding_mask` must have rank 2"):
        encoder(x, padding_mask=np.ones((B, T, 1), bool))
    with pytest.raises(ValueError, match=r"padding_mask.shape=\(2, 4\)"):
        encoder(x, padding_mask=np.ones((B, T - 1), bool))
    with pytest.raises(ValueError, match=r"`attention_mask` must have shape \(B, T, T\)"):
        encoder(x, attention_mask=np.ones((B, T, T + 1), bool))
