import os

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image

from keras_attention.finetune import AttentionMapLogger
from keras_attention.layers import TokenAndPositionEmbedding
from keras_attention.layers import TransformerDecoder
from keras_attention.layers import TransformerEncoder
from keras_attention.visualize import attention_scores_model
from keras_attention.visualize import plot_attention


def text_model():
    token_ids = keras.Input((5,), dtype="int32")
    x = TokenAndPositionEmbedding(20, 5, 8, mask_zero=True, name="embedding")(token_ids)
    x = TransformerEncoder(16, num_heads=2, name="encoder")(x)
    return keras.Model(token_ids, keras.layers.Dense(1)(x))


def test_scores_follow_the_implicit_padding_mask():
    model = text_model()
    token_ids = np.array([[3, 4, 5, 0, 0]])
    scores = ops.convert_to_numpy(attention_scores_model(model)(token_ids)["encoder"])
    embedded = model.get_layer("embedding")(token_ids)
    _, direct = model.get_layer("encoder")(embedded, return_attention_scores=True)
    np.testing.assert_allclose(scores, ops.convert_to_numpy(direct), atol=1e-6)
    assert np.all(scores[0, :, :3, 3:] == 0)  # padded keys get no attention
    np.testing.assert_allclose(scores[0, :, :3].sum(-1), 1.0, atol=1e-5)


def test_decoder_gives_self_and_cross_scores():
    source = keras.Input((6, 8))
    target = keras.Input((4, 8))
    x = TransformerDecoder(16, num_heads=2, name="decoder")(target, source)
    model = keras.Model([target, source], x)
    scores = attention_scores_model(model)([np.ones((1, 4, 8)), np.ones((1, 6, 8))])
    assert tuple(scores["decoder/self"].shape) == (1, 2, 4, 4)
    assert tuple(scores["decoder/cross"].shape) == (1, 2, 4, 6)


def test_model_without_attention_raises():
    inputs = keras.Input((3,))
    with pytest.raises(ValueError, match="No attention-bearing layer"):
        attention_scores_model(keras.Model(inputs, keras.layers.Dense(1)(inputs)))


def test_plot_attention_writes_a_png_and_checks_the_shape(tmp_path):
    path = plot_attention(np.random.rand(2, 3, 4), str(tmp_path / "deep" / "map.png"), title="t")
    assert Image.open(path).format == "PNG"
    with pytest.raises(ValueError, match=r"\(T, S\)"):
        plot_attention(np.ones(3), str(tmp_path / "bad.png"))


def test_logger_saves_pictures_every_n_epochs(tmp_path):
    model = text_model()
    model.compile(optimizer="adam", loss="mse")
    examples = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    logger = AttentionMapLogger(examples, str(tmp_path), every_n_epochs=2, labels=[list("abcde")] * 2)
    model.fit(np.random.randint(1, 20, (8, 5)), np.zeros((8, 5, 1)), epochs=4, verbose=0, callbacks=[logger])
    assert sorted(os.listdir(tmp_path)) == ["epoch_002", "epoch_004"]
    assert sorted(os.listdir(tmp_path / "epoch_004")) == ["encoder_example_0.png", "encoder_example_1.png"]
    # Rebuilt from its serialized config, it draws the same examples.
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(logger))
    assert restored.get_config() == logger.get_config()
    restored.directory = str(tmp_path / "restored")
    model.fit(np.random.randint(1, 20, (8, 5)), np.zeros((8, 5, 1)), epochs=2, verbose=0, callbacks=[restored])
    assert sorted(os.listdir(tmp_path / "restored" / "epoch_002")) == [
        "encoder_example_0.png",
        "encoder_example_1.png",
    ]


def test_logger_rejects_bad_period(tmp_path):
    with pytest.raises(ValueError, match="every_n_epochs"):
        AttentionMapLogger(np.ones((1, 3)), str(tmp_path), every_n_epochs=0)
