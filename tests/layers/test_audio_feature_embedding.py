"""Tests of `AudioFeatureEmbedding`."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import AudioFeatureEmbedding
from tests.harness import run_layer_test

SAMPLE_RATE = 8000
# 32 ms windows every 16 ms: tiny FFTs (256) for fast tests.
SMALL = {"sample_rate": SAMPLE_RATE, "frame_length": 256, "frame_step": 128, "num_mel_bins": 16}


class MaskOf(keras.layers.Layer):
    """Returns the implicit Keras mask it receives, as 0/1 floats."""

    def call(self, inputs, mask=None):
        return ops.cast(mask, "float32")

    def compute_mask(self, inputs, mask=None):
        return None


def tone(frequency, num_samples, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * frequency * np.arange(num_samples) / SAMPLE_RATE)).astype("float32")


def log_mel_layer(**kwargs):
    """A layer whose outputs are the log-mel features themselves."""
    layer = AudioFeatureEmbedding(16, use_position_encoding=False, **SMALL, **kwargs)
    layer.build((None, 1024))
    layer.projection.kernel.assign(np.eye(16, dtype="float32"))
    layer.projection.bias.assign(np.zeros(16, "float32"))
    return layer


def test_layer_waveform():
    run_layer_test(
        AudioFeatureEmbedding,
        {"hidden_dim": 8, "sample_rate": SAMPLE_RATE, "frame_length": 64, "frame_step": 32, "num_mel_bins": 8},
        np.random.normal(size=(2, 512)).astype("float32"),
        expected_output_shape=(2, 17, 8),  # 1 + 512 // 32 frames
        expected_num_trainable_weights=2,
    )


def test_layer_spectrogram():
    run_layer_test(
        AudioFeatureEmbedding,
        {"hidden_dim": 8, "input_type": "spectrogram", "mask_zero": True},
        np.random.normal(size=(2, 10, 12)).astype("float32"),
        expected_output_shape=(2, 10, 8),
        expected_num_trainable_weights=2,
    )


def test_mel_band_centres_computed_by_hand():
    # HTK mel scale: 16 bands between 20 Hz and 4 kHz, centres equally
    # spaced in mel = 1127 ln(1 + f / 700).
    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    edges = np.linspace(mel(20.0), mel(SAMPLE_RATE / 2), 16 + 2)
    centres = 700.0 * (np.exp(edges[1:-1] / 1127.0) - 1.0)
    np.testing.assert_allclose(centres[[4, 10]], [550.2, 1724.0], atol=0.1)
    layer = log_mel_layer()
    for band in (2, 4, 10, 14):
        features = ops.convert_to_numpy(layer(tone(centres[band], 2048)[None]))[0]  # [frames, bins]
        # Away from the clip edges, each frame's energy peaks in that band.
        assert (features[2:-2].argmax(axis=-1) == band).all(), band


def test_log_mel_spectrogram_is_what_the_layer_projects():
    waveform_layer = AudioFeatureEmbedding(8, **SMALL)
    audio = np.random.normal(size=(2, 1024)).astype("float32")
    features = waveform_layer.log_mel_spectrogram(audio)
    assert keras.backend.standardize_dtype(features.dtype) == "float32"
    assert tuple(features.shape) == (2, 9, 16)
    spectrogram_layer = AudioFeatureEmbedding(8, input_type="spectrogram")
    spectrogram_layer.build(features.shape)
    spectrogram_layer.set_weights(waveform_layer.get_weights())
    np.testing.assert_allclose(
        ops.convert_to_numpy(spectrogram_layer(features)), ops.convert_to_numpy(waveform_layer(audio)), atol=1e-5
    )
    with pytest.raises(ValueError, match='needs a layer with input_type="waveform"'):
        spectrogram_layer.log_mel_spectrogram(audio)


def test_silence_gives_finite_floor_and_louder_gives_more():
    layer = log_mel_layer()
    silence = ops.convert_to_numpy(layer(np.zeros((1, 1024), "float32")))
    np.testing.assert_allclose(silence, np.log(1e-6), rtol=1e-5)
    quiet = ops.convert_to_numpy(layer(tone(1000, 1024, 0.1)[None]))
    loud = ops.convert_to_numpy(layer(tone(1000, 1024, 1.0)[None]))
    # Power scales with amplitude squared: log(100) = 4.6 more in the peak band.
    peak = loud[0, 4].argmax()
    np.testing.assert_allclose(loud[0, 4, peak] - quiet[0, 4, peak], np.log(100.0), atol=0.05)


def test_padding_changes_only_frames_that_reach_it():
    layer = AudioFeatureEmbedding(8, **SMALL)
    clip = np.random.normal(size=(1, 1024)).astype("float32")
    padded = np.concatenate([clip, np.zeros((1, 1024), "float32")], axis=1)
    short = ops.convert_to_numpy(layer(clip))  # 9 frames
    long = ops.convert_to_numpy(layer(padded))  # 17 frames
    # Frame t spans samples t * 128 - 128 ... t * 128 + 127: frames 0-7 end before 1024.
    np.testing.assert_allclose(long[:, :8], short[:, :8], atol=1e-4)
    assert not np.allclose(long[:, 8], short[:, 8], atol=1e-4)


def test_examples_are_independent_of_each_other():
    layer = AudioFeatureEmbedding(8, **SMALL)
    clip = tone(440, 1024)[None]
    alone = ops.convert_to_numpy(layer(clip))
    with_loud_neighbour = ops.convert_to_numpy(layer(np.concatenate([clip, 100 * clip])))
    np.testing.assert_allclose(with_loud_neighbour[:1], alone, atol=1e-4)


def test_channel_axis_is_accepted():
    layer = AudioFeatureEmbedding(8, **SMALL)
    clip = np.random.normal(size=(2, 1024)).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(clip[..., None])), ops.convert_to_numpy(layer(clip)), atol=1e-5
    )


def test_spectrogram_input_is_projected():
    layer = AudioFeatureEmbedding(4, input_type="spectrogram", use_position_encoding=False)
    frames = np.random.normal(size=(2, 5, 3)).astype("float32")
    outputs = ops.convert_to_numpy(layer(frames))
    kernel = ops.convert_to_numpy(layer.projection.kernel)
    bias = ops.convert_to_numpy(layer.projection.bias)
    np.testing.assert_allclose(outputs, frames @ kernel + bias, atol=1e-5)


def test_position_encoding_is_added():
    frames = np.random.normal(size=(1, 5, 3)).astype("float32")
    with_positions = AudioFeatureEmbedding(4, input_type="spectrogram")
    outputs = ops.convert_to_numpy(with_positions(frames))
    projected = ops.convert_to_numpy(with_positions.projection(frames))
    encoding = ops.convert_to_numpy(with_positions.position_encoding(projected))
    np.testing.assert_allclose(outputs, projected + encoding, atol=1e-5)
    np.testing.assert_allclose(encoding[0, 1, :2], [np.sin(1.0), np.cos(1.0)], atol=1e-6)


@pytest.mark.parametrize("num_samples", [1024, 1151])
def test_compute_output_shape_matches_the_call(num_samples):
    layer = AudioFeatureEmbedding(8, **SMALL)
    outputs = layer(np.zeros((1, num_samples), "float32"))
    assert tuple(outputs.shape) == layer.compute_output_shape((1, num_samples)) == (1, 1 + num_samples // 128, 8)


def test_mask_zero_masks_frames_after_the_last_sample():
    layer = AudioFeatureEmbedding(8, mask_zero=True, **SMALL)
    audio = np.zeros((3, 2048), "float32")
    audio[0, :1000] = tone(440, 1000)
    audio[1] = tone(440, 2048)
    audio[2, 500:700] = 0.3  # leading silence stays real
    mask = ops.convert_to_numpy(layer.compute_mask(audio))
    # Frame t is real while its centre t * 128 is at or before the last nonzero sample.
    np.testing.assert_array_equal(mask.sum(axis=1), [8, 17, 6])
    np.testing.assert_array_equal(mask[2, :6], True)


def test_explicit_mask_wins_over_mask_zero():
    layer = AudioFeatureEmbedding(8, mask_zero=True, **SMALL)
    audio = np.zeros((1, 2048), "float32")
    sample_mask = np.arange(2048)[None] < 1536
    mask = ops.convert_to_numpy(layer.compute_mask(audio, sample_mask))
    np.testing.assert_array_equal(mask, np.arange(17)[None] < 12)


def test_no_mask_by_default():
    layer = AudioFeatureEmbedding(8, **SMALL)
    assert layer.compute_mask(np.zeros((1, 1024), "float32")) is None


def test_spectrogram_mask_zero_masks_trailing_zero_frames():
    layer = AudioFeatureEmbedding(4, input_type="spectrogram", mask_zero=True)
    frames = np.ones((2, 6, 3), "float32")
    frames[0, 4:] = 0.0
    frames[1, 1] = 0.0  # an inner silent frame stays real
    mask = ops.convert_to_numpy(layer.compute_mask(frames))
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])


def test_implicit_mask_reaches_the_next_layer():
    audio = keras.Input((2048,))
    sample_mask = keras.Input((2048,), dtype="bool")
    embeddings = AudioFeatureEmbedding(8, **SMALL)(audio, mask=sample_mask)
    model = keras.Model([audio, sample_mask], MaskOf()(embeddings))
    lengths = np.array([1000, 2048])
    frame_mask = ops.convert_to_numpy(
        model([np.ones((2, 2048), "float32"), np.arange(2048)[None] < lengths[:, None]])
    )
    np.testing.assert_array_equal(frame_mask.sum(axis=1), [8, 17])


def test_clips_of_any_length_in_one_model():
    audio = keras.Input((None,))
    model = keras.Model(audio, MaskOf()(AudioFeatureEmbedding(8, mask_zero=True, **SMALL)(audio)))
    for num_samples, length, real_frames in ((1024, 1024, 9), (2048, 1000, 8)):
        clip = np.zeros((1, num_samples), "float32")
        clip[0, :length] = 0.5
        frame_mask = ops.convert_to_numpy(model(clip))
        assert frame_mask.shape == (1, 1 + num_samples // 128)
        assert frame_mask.sum() == real_frames


def test_mask_zero_reaches_the_next_layer():
    audio = keras.Input((2048,))
    model = keras.Model(audio, MaskOf()(AudioFeatureEmbedding(8, mask_zero=True, **SMALL)(audio)))
    clip = np.zeros((1, 2048), "float32")
    clip[0, :1000] = 0.5
    np.testing.assert_array_equal(ops.convert_to_numpy(model(clip)).sum(), 8)


def test_waveform_and_log_mel_stay_float32_under_mixed_precision():
    # Samples of 1e5 are inf in float16 (largest 65504), and so would be
    # the mel powers (about 1e14); the log-mel features are about 32.
    layer = AudioFeatureEmbedding(8, dtype="mixed_float16", **SMALL)
    outputs = layer(tone(1000, 1024, amplitude=1e5)[None])
    assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
    assert np.isfinite(ops.convert_to_numpy(ops.cast(outputs, "float32"))).all()
    assert layer.mel_spectrogram.compute_dtype == "float32"
    assert layer.projection.dtype_policy.name == "mixed_float16"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_type": "mfcc"}, "Unknown input_type: 'mfcc'"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"sample_rate": None}, "sample_rate"),
        ({"frame_length": 0}, "frame_length"),
        ({"frame_step": 1.5}, "frame_step"),
        ({"num_mel_bins": -1}, "num_mel_bins"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AudioFeatureEmbedding(**{"hidden_dim": 8, **kwargs})


@pytest.mark.parametrize("shape", [(2, 1024, 2), (1024,), (2, 4, 1024, 1)])
def test_waveform_of_wrong_shape(shape):
    with pytest.raises(ValueError, match="mono audio of shape"):
        AudioFeatureEmbedding(8, **SMALL)(np.zeros(shape, "float32"))


@pytest.mark.parametrize("shape", [(2, 1024), (2, 5, 3, 1)])
def test_spectrogram_of_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"\(B, frames, bins\)"):
        AudioFeatureEmbedding(8, input_type="spectrogram")(np.zeros(shape, "float32"))


def test_waveform_too_short_for_a_frame():
    with pytest.raises(ValueError, match="128 samples.*at least 129"):
        AudioFeatureEmbedding(8, **SMALL)(np.zeros((1, 128), "float32"))


def test_mask_of_wrong_rank():
    layer = AudioFeatureEmbedding(8, **SMALL)
    with pytest.raises(ValueError, match=r"\(B, samples\)"):
        layer(np.zeros((1, 1024), "float32"), mask=np.ones((1, 1024, 1), bool))
