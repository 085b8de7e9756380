"""Tokenizer and model of the text-classification application: raw strings in, saved whole."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from applications.text_classification import evaluation
from applications.text_classification import model as model_lib
from applications.text_classification import recipe

TEXTS = [
    "a gripping film, really gripping",
    "a dull film and a dull plot",
    "what a great movie",
    "terrible acting, terrible film",
    "loved it",
    "hated it",
] * 4


@pytest.fixture(scope="module")
def vocabulary():
    return model_lib.learn_vocabulary(TEXTS, vocabulary_size=120, min_word_count=2)


def tiny_classifier(vocabulary, pooling="mean", sequence_length=12, ensemble_size=1):
    tokenizer = model_lib.build_tokenizer(vocabulary, sequence_length)
    return model_lib.build_classifier(
        tokenizer, ["negative", "positive"], hidden_dim=8, num_layers=1, num_heads=2,
        intermediate_dim=16, dropout=0.0, embedding_dropout=0.0, pooling=pooling,
        ensemble_size=ensemble_size,
    )


def test_vocabulary_reserved_tokens_pieces_and_words(vocabulary):
    assert vocabulary[:2] == ["[PAD]", "[UNK]"]
    assert len(vocabulary) == len(set(vocabulary)) <= 120
    # Words seen at least twice join whole, after keras_hub's pieces.
    assert {"gripping", "dull", "terrible", "film"} <= set(vocabulary)
    assert "##g" in vocabulary  # Pieces cover what words do not.


def test_tokenizer_round_trip_truncation_and_padding(vocabulary):
    tokenizer = model_lib.build_tokenizer(vocabulary, sequence_length=8)
    ids = np.asarray(tokenizer(tf.constant(["A Gripping FILM", "loved it " * 50])))
    assert ids.shape == (2, 8) and ids.dtype == np.int32
    assert ids[0, 3:].tolist() == [0] * 5  # Padded with [PAD] = 0.
    assert np.all(ids[1] > 0)  # Truncated to 8 pieces.
    (text,) = np.asarray(tokenizer.detokenize(ids[:1, :3])).tolist()
    assert (text.decode() if isinstance(text, bytes) else text) == "a gripping film"
    unknown = np.asarray(tokenizer(tf.constant(["zzzq"])))  # Unseen: pieces, never a crash.
    assert unknown[0, 0] > 0


def test_predict_on_raw_strings_and_reload_safe_mode(vocabulary, tmp_path):
    classifier, _ = tiny_classifier(vocabulary, pooling="attention", ensemble_size=2)

    long_text = "spam " * 20000  # 100,000 characters: truncated, not a crash.
    inputs = ["a gripping film", "a dull film", long_text, ""]
    expected = classifier.predict(inputs, verbose=0)
    assert expected.shape == (4, 2)
    assert np.all(np.isfinite(expected)) and np.allclose(expected.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(classifier.predict(np.array(inputs), verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(classifier.predict("a gripping film", verbose=0), expected[:1], atol=1e-6)

    path = tmp_path / "model.keras"
    classifier.save(path)
    keras.backend.clear_session()
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(reloaded, model_lib.TextClassifier)
    assert reloaded.class_names == ["negative", "positive"]
    np.testing.assert_allclose(reloaded.predict(inputs, verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(reloaded(["a dull film"])), expected[1:2], atol=1e-5)


def test_long_texts_are_truncated_when_read_and_encoded(vocabulary, tmp_path):
    from applications.text_classification import data

    path = tmp_path / "long.tsv"
    path.write_text(f"{'gripping ' * 11_112}\tpositive\ndull\tnegative\n")
    texts = data.read_table(path).texts
    assert len(texts[0]) > 100_000
    ids = recipe.encode(model_lib.build_tokenizer(vocabulary, 12), texts)
    assert ids.shape == (2, 12) and np.all(ids[0] > 1)


def test_attention_over_tokens(vocabulary):
    classifier, _ = tiny_classifier(vocabulary, pooling="attention")
    attention = model_lib.attention_over_tokens(classifier, "A gripping film")
    assert attention["tokens"] == ["a", "gripping", "film"]
    (scores,) = attention["encoder_scores"]
    assert scores.shape == (2, 3, 3)
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, atol=1e-5)
    assert attention["pooling_weights"].shape == (1, 3)
    # The 12-token limit holds for a long text too.
    assert len(model_lib.attention_over_tokens(classifier, "film " * 100)["tokens"]) == 12


def test_pictures_are_written(vocabulary, tmp_path):
    classifier, _ = tiny_classifier(vocabulary)
    recipe.write_attention_picture(classifier, "a gripping film", tmp_path / "attention.png")
    evaluation.plot_confusion_matrix([[3, 1], [0, 4]], ["negative", "positive"], tmp_path / "cm.png")
    for name in ("attention.png", "cm.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_and_unknown_labels():
    metrics = evaluation.classification_metrics([0, 1, 2, 2], [0, 1, 2, 1], ["a", "b", "c"])
    assert metrics["accuracy"] == 0.75
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    evaluation.check_labels(["a", "b"], ["a", "b", "c"])
    with pytest.raises(Exception, match="never trained on: 'zebra'"):
        evaluation.check_labels(["a", "zebra"], ["a", "b"], "test.tsv")


def test_training_batches_repeat_for_a_seed():
    ids = np.arange(1, 41, dtype="int32").reshape(10, 4)
    labels = np.array([0, 1] * 5)
    settings = {**recipe.SETTINGS, "token_dropout": 0.3}

    def batches(seed):
        targets = recipe.targets(labels, 2, ensemble_size=3)
        dataset = recipe.training_dataset(ids, targets, settings, batch_size=4, seed=seed)
        return [x.numpy() for x, _ in dataset]

    first, again, other = batches(1), batches(1), batches(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    dropped = np.concatenate([b.ravel() for b in first])
    assert 0 < np.mean(dropped == 1) < 0.6  # Some tokens became [UNK] (id 1).


def test_ensemble_output_is_the_mean_of_its_members(vocabulary):
    classifier, trained = tiny_classifier(vocabulary, ensemble_size=3)
    ids = recipe.encode(model_lib.parts(classifier)["tokenizer"], TEXTS[:4])
    outputs = trained.predict(ids, verbose=0)
    assert outputs["members"].shape == (4, 3, 2)
    np.testing.assert_allclose(outputs["ensemble"], outputs["members"].mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(classifier.predict(TEXTS[:4], verbose=0), outputs["ensemble"], atol=1e-6)
    # Members differ: each has its own initialization.
    assert not np.allclose(outputs["members"][:, 0], outputs["members"][:, 1])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_probabilities_are_float32_under_mixed_precision(vocabulary, policy):
    keras.config.set_dtype_policy(policy)
    for ensemble_size in (1, 3):
        classifier, _ = tiny_classifier(vocabulary, ensemble_size=ensemble_size)
        probabilities = classifier.predict(TEXTS[:4], verbose=0)
        assert probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-6)
