import os
import tempfile

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_attention.heads import LanguageModelHead
from keras_attention.layers import TokenAndPositionEmbedding
from tests.harness import run_layer_test

RNG = np.random.default_rng(5)
HIDDEN = RNG.normal(size=(2, 3, 4)).astype("float32")
TOKEN_IDS = np.array([[1, 5, 2], [6, 3, 0]])


def numpy(x):
    return ops.convert_to_numpy(x)


def dtype_name(x):
    return keras.backend.standardize_dtype(x.dtype)


def test_layer_untied():
    run_layer_test(
        LanguageModelHead,
        {"vocabulary_size": 7, "head_dtype": None},
        HIDDEN,
        expected_output_shape=(2, 3, 7),
        expected_num_trainable_weights=2,
    )


def test_layer_tied():
    embedding = keras.layers.Embedding(7, 4)
    run_layer_test(
        LanguageModelHead,
        {"vocabulary_size": 7, "embedding": embedding, "head_dtype": None},
        HIDDEN,
        expected_output_shape=(2, 3, 7),
        expected_num_trainable_weights=2,  # the embedding's matrix and the bias
    )


def test_tied_logits_are_hidden_times_embedding_transposed():
    embedding = keras.layers.Embedding(7, 4)
    head = LanguageModelHead(7, embedding=embedding)
    head.build(HIDDEN.shape)
    head.bias.assign(np.arange(7, dtype="float32"))
    matrix = numpy(embedding.embeddings)
    expected = HIDDEN @ matrix.T + np.arange(7)
    np.testing.assert_allclose(numpy(head(HIDDEN)), expected, atol=1e-5)
    assert len(head.trainable_weights) == 2 and not hasattr(head, "output_dense")


def tied_model(embedding_layer):
    token_ids = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Dense(4, name="body")(embedding_layer(token_ids))
    logits = LanguageModelHead(7, embedding=embedding_layer, name="head")(hidden)
    return keras.Model(token_ids, logits)


EMBEDDINGS = {
    "keras_embedding": lambda: keras.layers.Embedding(7, 4),
    "keras_reversible": lambda: keras.layers.ReversibleEmbedding(7, 4),
    "keras_hub_reversible": lambda: keras_hub.layers.ReversibleEmbedding(7, 4),
    "ours": lambda: TokenAndPositionEmbedding(vocabulary_size=7, sequence_length=3, embedding_dim=4),
}


@pytest.mark.parametrize("kind", list(EMBEDDINGS))
def test_tie_survives_save_and_reload(kind):
    model = tied_model(EMBEDDINGS[kind]())
    expected = numpy(model(TOKEN_IDS))
    # One embedding matrix in the model, not two.
    assert len(model.trainable_weights) == len({id(w) for w in model.trainable_weights})
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(numpy(restored(TOKEN_IDS)), expected, atol=1e-5)
    embedding_layer = restored.layers[1]
    assert restored.get_layer("head").embedding is embedding_layer
    assert len(restored.weights) == len(model.weights)


def test_training_updates_the_shared_matrix_through_both_ends():
    embedding = keras.layers.Embedding(7, 4)
    model = tied_model(embedding)
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = numpy(embedding.embeddings).copy()
    model.fit(TOKEN_IDS, TOKEN_IDS, epochs=1, verbose=0)
    after = numpy(embedding.embeddings)
    # Token 4 is never an input, only a target: its row moves through the head.
    assert not np.allclose(before[4], after[4])
    np.testing.assert_allclose(
        numpy(model.get_layer("head").embedding.embeddings), after
    )


@pytest.mark.parametrize("tied", [False, True])
def test_padding_mask_reaches_the_loss(tied):
    """Behind `Embedding(mask_zero=True)`, the compiled loss is the mean over the real tokens only."""
    embedding = keras.layers.Embedding(7, 4, mask_zero=True)
    token_ids = keras.Input((3,), dtype="int32")
    logits = LanguageModelHead(7, embedding=embedding if tied else None)(embedding(token_ids))
    model = keras.Model(token_ids, logits)
    embedding.embeddings.assign(RNG.normal(size=(7, 4)))  # Losses far apart from token to token.
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = np.array([[2, 4, 6], [5, 1, 3]])
    loss = model.evaluate(TOKEN_IDS, labels, verbose=0)

    log_probs = numpy(ops.log_softmax(model.predict(TOKEN_IDS, verbose=0), axis=-1))
    token_losses = -np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(loss, token_losses[TOKEN_IDS != 0].mean(), rtol=1e-5)
    assert not np.isclose(loss, token_losses.mean(), rtol=1e-2)  # The padded position counts otherwise.


def test_float32_logits_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    embedding = keras.layers.Embedding(7, 4)
    for head in (LanguageModelHead(7), LanguageModelHead(7, embedding=embedding)):
        logits = head(ops.cast(HIDDEN, "bfloat16"))
        assert dtype_name(logits) == "float32"
        assert head.get_config()["head_dtype"] == "float32"
    assert dtype_name(LanguageModelHead(7, head_dtype=None)(HIDDEN)) == "bfloat16"


def test_bad_arguments_and_shapes():
    for vocabulary_size in (0, 7.0, None):
        with pytest.raises(ValueError, match="`vocabulary_size` must be a positive integer"):
            LanguageModelHead(vocabulary_size)
    with pytest.raises(ValueError, match="`embedding` must be a keras.layers.Embedding"):
        LanguageModelHead(7, embedding=keras.layers.Dense(7))
    with pytest.raises(ValueError, match="must have `vocabulary_size` rows"):
        LanguageModelHead(8, embedding=keras.layers.Embedding(7, 4))
    with pytest.raises(ValueError, match="hidden size must equal the tied embedding's size"):
        LanguageModelHead(7, embedding=keras.layers.Embedding(7, 5))(HIDDEN)
    with pytest.raises(ValueError, match="`head_dtype` must be None"):
        LanguageModelHead(7, head_dtype="int4x")
