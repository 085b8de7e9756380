import keras
import pytest

from keras_attention.finetune import freeze
from keras_attention.finetune import matching_layers
from keras_attention.finetune import unfreeze


def make_model():
    inputs = keras.Input((4,))
    block = keras.Sequential(
        [keras.layers.Dense(4, name="query"), keras.layers.Dense(4, name="value")], name="block"
    )
    x = block(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    return keras.Model(inputs, outputs, name="model")


def trainable_paths(model):
    return sorted(w.path for w in model.trainable_weights)


def test_freeze_by_pattern_leaves_the_rest_trainable():
    model = make_model()
    frozen = freeze(model, ["*block", "norm"])
    assert [layer.name for layer in frozen] == ["block", "norm"]
    assert trainable_paths(model) == ["head/bias", "head/kernel"]


def test_unfreeze_one_sublayer_of_a_frozen_container():
    model = make_model()
    freeze(model)
    assert model.trainable_weights == []
    unfreeze(model, "*/query")
    assert trainable_paths(model) == ["block/query/bias", "block/query/kernel"]


def test_unfreeze_everything_restores_the_original_set():
    model = make_model()
    before = trainable_paths(model)
    freeze(model)
    unfreeze(model)
    assert trainable_paths(model) == before


def test_no_match_names_the_known_paths():
    with pytest.raises(ValueError, match="No layer matches.*block/query"):
        matching_layers(make_model(), "*decoder*")
