import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.finetune import apply_lora
from keras_attention.finetune import merge_lora
from keras_attention.finetune import restart_lora
from keras_attention.layers import TokenAndPositionEmbedding


def make_model():
    inputs = keras.Input((6, 16))
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="attention")(inputs, inputs)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs, name="model")


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 6, 16)).astype("float32"), rng.integers(0, 3, size=(32,))


def embedding_model(mask_zero=False):
    """Token ids (5 of a 20-token vocabulary) to 2 logits: a token table, pooling and a head."""
    token_ids = keras.Input((5,), dtype="int32")
    x = TokenAndPositionEmbedding(20, 5, 8, mask_zero=mask_zero, name="embedding")(token_ids)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(token_ids, outputs)


def test_adapters_start_at_zero_and_only_they_train():
    model = make_model()
    x, y = data()
    before = ops.convert_to_numpy(model(x))
    frozen_before = {w.path: ops.convert_to_numpy(w).copy() for w in model.weights}
    apply_lora(model, rank=2)
    np.testing.assert_allclose(ops.convert_to_numpy(model(x)), before, atol=1e-6)
    assert sorted(w.path for w in model.trainable_weights) == [
        "attention/query/lora_kernel_a",
        "attention/query/lora_kernel_b",
        "attention/value/lora_kernel_a",
        "attention/value/lora_kernel_b",
    ]
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    for path, value in frozen_before.items():
        np.testing.assert_array_equal(ops.convert_to_numpy(next(w for w in model.weights if w.path == path)), value)
    assert not np.allclose(ops.convert_to_numpy(model(x)), before, atol=1e-4)


def test_keep_trainable_and_dense_targets_by_pattern():
    model = make_model()
    adapted = apply_lora(model, rank=4, targets=("*hidden",), keep_trainable=("head",))
    assert [layer.name for layer in adapted] == ["hidden"]
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    assert trainable == 16 * 4 + 4 * 16 + 16 * 3 + 3
    assert trainable < 0.5 * total


def test_merge_gives_the_same_outputs_without_adapters(tmp_path):
    model = make_model()
    x, y = data()
    apply_lora(model, rank=2, alpha=4)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    merged = merge_lora(model)
    assert not any("lora" in w.path for w in merged.weights)
    assert len(merged.weights) == len(make_model().weights)
    np.testing.assert_allclose(ops.convert_to_numpy(merged(x)), ops.convert_to_numpy(model(x)), atol=1e-5)
    path = os.path.join(tmp_path, "merged.keras")
    merged.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(ops.convert_to_numpy(restored(x)), ops.convert_to_numpy(model(x)), atol=1e-5)


def test_embedding_table_adapters_train_and_merge(tmp_path):
    """A token embedding named in `targets` gets `A (V, r) @ B (r, D)` on its table."""
    token_ids = keras.Input((5,), dtype="int32")
    x = TokenAndPositionEmbedding(20, 5, 8, mask_zero=True, name="embedding")(token_ids)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="attention")(x, x)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(token_ids, outputs)
    ids = np.random.default_rng(0).integers(1, 20, size=(16, 5)).astype("int32")
    labels = np.arange(16) % 2
    before = ops.convert_to_numpy(model(ids))
    table = ops.convert_to_numpy(model.get_layer("embedding").token_embedding.embeddings).copy()

    adapted = apply_lora(model, rank=3, targets=("query", "value", "token_embedding"), keep_trainable=("head",))
    assert sorted(layer.name for layer in adapted) == ["query", "token_embedding", "value"]
    np.testing.assert_allclose(ops.convert_to_numpy(model(ids)), before, atol=1e-6)
    trainable = {w.path: tuple(w.shape) for w in model.trainable_weights}
    assert trainable["embedding/token_embedding/lora_embeddings_a"] == (20, 3)
    assert trainable["embedding/token_embedding/lora_embeddings_b"] == (3, 8)
    assert "embedding/token_embedding/embeddings" not in trainable
    assert "embedding/position_embedding/embeddings" not in trainable

    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ids, labels, epochs=3, verbose=0)
    # The frozen table itself (the layer's `embeddings` property would add the adapters).
    frozen = next(w for w in model.weights if w.path == "embedding/token_embedding/embeddings")
    np.testing.assert_array_equal(ops.convert_to_numpy(frozen), table)
    merged = merge_lora(model)
    assert not any("lora" in w.path for w in merged.weights)
    # The adapters moved the table, and the merged table carries the move.
    assert not np.allclose(ops.convert_to_numpy(merged.get_layer("embedding").token_embedding.embeddings), table)
    np.testing.assert_allclose(ops.convert_to_numpy(merged(ids)), ops.convert_to_numpy(model(ids)), atol=1e-5)
    merged.save(os.path.join(tmp_path, "merged.keras"))
    restored = keras.saving.load_model(os.path.join(tmp_path, "merged.keras"), safe_mode=True)
    np.testing.assert_allclose(ops.convert_to_numpy(restored(ids)), ops.convert_to_numpy(model(ids)), atol=1e-5)


def test_tokens_the_data_never_uses_keep_their_rows():
    """Only the rows of the tokens in the fine-tuning data move; the others stay as pretrained.

    With keras's default initialization (`A` drawn, `B` zero) every row would move once `B`
    learns, by the token's random row of `A` times `B`.
    """
    model = embedding_model()
    table = ops.convert_to_numpy(model.get_layer("embedding").token_embedding.embeddings).copy()
    apply_lora(model, rank=2, targets=("token_embedding",), keep_trainable=("head",))
    ids = np.random.default_rng(2).integers(0, 10, size=(32, 5)).astype("int32")  # Tokens 10-19 unused.
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ids, np.arange(32) % 2, epochs=3, verbose=0)
    tuned = ops.convert_to_numpy(merge_lora(model).get_layer("embedding").token_embedding.embeddings)
    np.testing.assert_array_equal(tuned[10:], table[10:])
    assert np.all(np.abs(tuned[:10] - table[:10]).max(axis=1) > 1e-3)


def test_merge_after_training_leaves_the_optimizer_state_behind():
    """The adapted model's optimizer has slots for the adapters; the merged one starts afresh.

    Here both models have four trainable variables (adapters and head against table,
    positions and head), so carrying the optimizer state over would assign a (20, 2) slot to
    the (20, 8) table.
    """
    model = embedding_model(mask_zero=True)
    apply_lora(model, rank=2, targets=("token_embedding",), keep_trainable=("head",))
    ids = np.random.default_rng(1).integers(1, 20, size=(16, 5)).astype("int32")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ids, np.arange(16) % 2, epochs=2, verbose=0)
    assert len(model.trainable_weights) == 4
    merged = merge_lora(model)
    np.testing.assert_allclose(ops.convert_to_numpy(merged(ids)), ops.convert_to_numpy(model(ids)), atol=1e-5)
    assert len(merged.trainable_weights) == 4 and merged.optimizer is not None
    # A fresh optimizer (compiled as `model` was), not the adapters' state.
    assert merged.optimizer is not model.optimizer and int(merged.optimizer.iterations) == 0


def test_resumed_from_a_checkpoint_the_adapters_train_again(tmp_path):
    # keras checkpoints an adapted layer merged, and loading zeroes its adapters,
    # where neither gets a gradient: restart_lora re-draws A (B stays zero).
    x, y = data()

    def adapted():
        keras.utils.set_random_seed(0)
        model = make_model()
        apply_lora(model, rank=2, targets=("query", "hidden"), keep_trainable=["head"])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    backup = keras.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    model = adapted()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[backup, Interrupt()])
    trained = ops.convert_to_numpy(model(x))

    resumed = adapted()
    seen = {}

    class Check(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            hidden = self.model.get_layer("hidden")
            seen["a"] = ops.convert_to_numpy(hidden.lora_kernel_a).copy()
            seen["b"] = ops.convert_to_numpy(hidden.lora_kernel_b).copy()
            seen["outputs"] = ops.convert_to_numpy(self.model(x))
            seen["restarted again"] = restart_lora(self.model)

    restarted = []
    callbacks = [
        keras.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False),
        keras.callbacks.LambdaCallback(on_train_begin=lambda logs: restarted.extend(restart_lora(resumed))),
        Check(),
    ]
    resumed.fit(x, y, epochs=3, verbose=0, callbacks=callbacks)
    assert sorted(layer.name for layer in restarted) == ["hidden", "query"]
    assert np.any(seen["a"]) and not np.any(seen["b"])
    np.testing.assert_allclose(seen["outputs"], trained, atol=1e-5)  # The restored run's outputs.
    assert seen["restarted again"] == []  # Adapters in use are left alone.
    assert np.any(ops.convert_to_numpy(resumed.get_layer("hidden").lora_kernel_b))


def test_restart_draws_the_table_adapters_b():
    model = embedding_model()
    apply_lora(model, rank=2, targets=("token_embedding",), keep_trainable=("head",))
    table = model.get_layer("embedding").token_embedding
    store = {}
    table.save_own_variables(store)
    table.load_own_variables(store)  # Adapters now zero, as after a checkpoint.
    ids = np.random.default_rng(3).integers(0, 20, size=(8, 5)).astype("int32")
    before = ops.convert_to_numpy(model(ids))
    assert [layer.name for layer in restart_lora(model)] == ["token_embedding"]
    assert not np.any(ops.convert_to_numpy(table.lora_embeddings_a))
    assert np.any(ops.convert_to_numpy(table.lora_embeddings_b))
    np.testing.assert_allclose(ops.convert_to_numpy(model(ids)), before, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rank=0), "rank"),
        (dict(rank=2, alpha=0), "alpha"),
        (dict(rank=2, targets=("decoder",)), "No Dense, EinsumDense or Embedding layer matches"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        apply_lora(make_model(), **kwargs)


def test_a_single_target_name_is_one_target():
    assert [layer.name for layer in apply_lora(make_model(), rank=2, targets="value")] == ["value"]


def test_a_frozen_batch_normalization_keeps_its_statistics():
    inputs = keras.Input((6, 16))
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(inputs, inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D()(x)))
    apply_lora(model, rank=2, keep_trainable=["head"])
    statistics = [ops.convert_to_numpy(w).copy() for w in model.get_layer("norm").non_trainable_weights]
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*data(), epochs=1, verbose=0)
    for before, after in zip(statistics, model.get_layer("norm").non_trainable_weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(after), before)
    assert merge_lora(model).get_layer("norm").trainable
