import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.heads import CTCHead
from tests.harness import run_layer_test

RNG = np.random.default_rng(6)
FRAMES = RNG.normal(size=(2, 6, 4)).astype("float32")


def numpy(x):
    return ops.convert_to_numpy(x)


def test_layer():
    run_layer_test(
        CTCHead,
        {"vocabulary_size": 5, "dropout": 0.1, "head_dtype": None},
        FRAMES,
        expected_output_shape=(2, 6, 5),
        expected_num_trainable_weights=2,
    )


def one_hot_head():
    """A head whose logits are 10 x the one-hot frames: frame t says its label."""
    head = CTCHead(vocabulary_size=4)
    head.build((None, None, 4))
    head.output_dense.kernel.assign(10.0 * np.eye(4))
    return head


def test_greedy_and_beam_decoding_with_keras_ctc_decode():
    # Frames say 1 1 blank 2 2 3 and 3 3 1 ? ? ? (3 real frames).
    labels = np.array([[1, 1, 0, 2, 2, 3], [3, 3, 1, 0, 0, 0]])
    logits = one_hot_head()(np.eye(4, dtype="float32")[labels])
    frame_lengths = np.array([6, 3])
    for strategy in ("greedy", "beam_search"):
        decoded, _ = ops.ctc_decode(logits, frame_lengths, strategy=strategy, beam_width=4)
        decoded = numpy(decoded)[0]
        assert decoded[0][decoded[0] > 0].tolist() == [1, 2, 3], strategy
        assert decoded[1][decoded[1] > 0].tolist() == [3, 1], strategy


def test_ctc_losses_and_a_few_steps_of_training():
    labels = np.array([[1, 2, 0], [3, 0, 0]])  # padded with the blank
    frames = keras.Input((6, 4))
    model = keras.Model(frames, CTCHead(vocabulary_size=4)(keras.layers.Dense(8, activation="tanh")(frames)))
    logits = model(FRAMES)
    loss = numpy(keras.losses.CTC()(labels, logits))
    per_example = numpy(ops.ctc_loss(labels, logits, np.array([2, 1]), np.array([6, 6])))
    np.testing.assert_allclose(loss, per_example.mean(), rtol=1e-5)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.CTC())
    before = numpy(keras.losses.CTC()(labels, model(FRAMES)))
    model.fit(np.tile(FRAMES, (15, 1, 1)), np.tile(labels, (15, 1)), batch_size=2, verbose=0)
    after = numpy(keras.losses.CTC()(labels, model(FRAMES)))
    assert np.isfinite(after) and after < 0.5 * before


def test_frame_mask_passes_on_and_logits_are_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    frames = keras.Input((6, 4))
    masked = keras.layers.Masking()(frames)
    logits = CTCHead(vocabulary_size=5, name="head")(masked)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    # GlobalAveragePooling1D averages the frames that the mask keeps.
    pooled = keras.layers.GlobalAveragePooling1D(dtype="float32")(logits)
    model = keras.Model(frames, pooled)
    padded = FRAMES.copy()
    padded[1, 4:] = 0.0
    logits = numpy(model.get_layer("head")(padded))
    # The Masking layer hands the head float16 frames: compare to 1e-3.
    np.testing.assert_allclose(numpy(model(padded))[1], logits[1, :4].mean(0), atol=1e-3)
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.get_layer("head").weights)


def test_bad_arguments_and_shapes():
    for vocabulary_size in (1, 0, 4.0):
        with pytest.raises(ValueError, match="`vocabulary_size` must be an integer of at least 2"):
            CTCHead(vocabulary_size)
    with pytest.raises(ValueError, match="`dropout` must be a float"):
        CTCHead(5, dropout=-1)
    with pytest.raises(ValueError, match=r"expects frames of shape \(B, T, D\)"):
        CTCHead(5)(FRAMES[:, 0])
    with pytest.raises(ValueError, match="`head_dtype` must be None"):
        CTCHead(5, head_dtype="half-ish")
