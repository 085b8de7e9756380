"""Tests of `PatchEmbedding`."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import PatchEmbedding
from tests.harness import run_layer_test


def test_layer():
    run_layer_test(
        PatchEmbedding,
        {"patch_size": (2, 4), "hidden_dim": 6, "use_class_token": True},
        np.random.uniform(size=(2, 4, 8, 3)).astype("float32"),
        expected_output_shape=(2, 5, 6),  # a class token and 2 x 2 patches
        expected_num_trainable_weights=4,  # kernel, bias, class token, positions
    )


def test_layer_with_a_convolutional_stem():
    run_layer_test(
        PatchEmbedding,
        {"patch_size": 4, "hidden_dim": 6, "use_class_token": True, "stem_filters": (3, 5)},
        np.random.uniform(size=(2, 8, 8, 1)).astype("float32"),
        expected_output_shape=(2, 5, 6),  # a class token and 2 x 2 patches
        # Per stem layer a kernel, a scale and an offset; then kernel, bias, class token, positions.
        expected_num_trainable_weights=2 * 3 + 4,
        expected_num_non_trainable_weights=2 * 2,  # the moving mean and variance of each stem layer
    )


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow graph property")
def test_number_of_patches_stays_static_under_a_dynamic_batch_size():
    """In a traced step with an unknown batch size the tokens are still (B, P, D) with P known,
    which keeps the attention layers after it on keras's matmul path."""
    import tensorflow as tf

    layer = PatchEmbedding(4, 6, use_class_token=True, stem_filters=(3,))
    layer.build((None, 8, 12, 1))
    function = tf.function(layer, input_signature=[tf.TensorSpec((None, 8, 12, 1), "float32")])
    assert function.get_concrete_function().structured_outputs.shape.as_list() == [None, 7, 6]


@pytest.mark.parametrize("training", [False, True])
def test_convolutional_stem_equals_keras_layers(training):
    """Stem, projection and positions against the same keras layers with the same weights."""
    images = np.random.uniform(-1, 1, size=(3, 16, 8, 2)).astype("float32")
    layer = PatchEmbedding((8, 4), 5, stem_filters=(4, 6))
    layer.build(images.shape)
    rng = np.random.default_rng(0)
    for weight in layer.weights:  # Moving statistics too, so inference mode is not the identity.
        weight.assign(rng.uniform(0.5, 1.5, size=weight.shape).astype("float32"))
    reference = keras.Sequential(
        [
            keras.Input(images.shape[1:]),
            keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Conv2D(6, 3, strides=2, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Conv2D(5, (2, 1), strides=(2, 1)),  # What is left of the 8x4 patch: 2x1.
            keras.layers.Reshape((-1, 5)),
        ]
    )
    convolutions, normalizations = layer.stem_convolutions, layer.stem_normalizations
    ours = [convolutions[0], normalizations[0], convolutions[1], normalizations[1], layer.patch_projection]
    theirs = [l for l in reference.layers if not isinstance(l, (keras.layers.ReLU, keras.layers.Reshape))]
    for mine, other in zip(ours, theirs):
        other.set_weights(mine.get_weights())
    expected = ops.convert_to_numpy(reference(images, training=training))
    expected = expected + ops.convert_to_numpy(layer.position_embedding.position_embeddings)
    outputs = ops.convert_to_numpy(layer(images, training=training))
    assert outputs.shape == (3, 4, 5)  # (16 / 8) * (8 / 4) tokens
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)


def identity_patch_layer(patch_height, patch_width, channels, use_class_token=False):
    """A layer whose token is the flattened patch (row-major, then channels)."""
    hidden_dim = patch_height * patch_width * channels
    layer = PatchEmbedding((patch_height, patch_width), hidden_dim, use_class_token=use_class_token)
    return layer, hidden_dim


def set_identity(layer, image_shape, class_token=None):
    layer.build(image_shape)
    kernel = np.eye(layer.hidden_dim, dtype="float32").reshape(layer.patch_projection.kernel.shape)
    layer.patch_projection.kernel.assign(kernel)
    layer.patch_projection.bias.assign(np.zeros(layer.hidden_dim, "float32"))
    table = layer.position_embedding.position_embeddings
    # Position k adds 1000 * k to every feature, so the order is visible.
    layer.position_embedding.position_embeddings.assign(
        np.repeat(1000.0 * np.arange(table.shape[0], dtype="float32")[:, None], layer.hidden_dim, axis=1)
    )
    if class_token is not None:
        layer.class_token.assign(np.reshape(class_token, (1, 1, -1)).astype("float32"))


def numpy_patches(images, patch_height, patch_width):
    batch, height, width, channels = images.shape
    patches = images.reshape(batch, height // patch_height, patch_height, width // patch_width, patch_width, channels)
    patches = patches.transpose(0, 1, 3, 2, 4, 5)  # [B, rows, columns, ph, pw, C]
    return patches.reshape(batch, -1, patch_height * patch_width * channels)


def test_patches_in_row_major_order_with_an_identity_kernel():
    images = np.arange(2 * 4 * 6 * 2, dtype="float32").reshape(2, 4, 6, 2)
    layer, hidden_dim = identity_patch_layer(2, 3, 2)
    set_identity(layer, images.shape)
    outputs = ops.convert_to_numpy(layer(images))
    assert outputs.shape == (2, 4, hidden_dim)
    positions = 1000.0 * np.arange(4)[None, :, None]
    np.testing.assert_allclose(outputs, numpy_patches(images, 2, 3) + positions)
    # Hand-checked: token 1 is patch-row 0, patch-column 1 (columns 3-5), channel last.
    np.testing.assert_allclose(
        outputs[0, 1] - 1000.0, [6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23]
    )


def test_class_token_comes_first_with_its_own_position():
    images = np.random.uniform(size=(2, 4, 4, 1)).astype("float32")
    layer, hidden_dim = identity_patch_layer(2, 2, 1, use_class_token=True)
    class_token = np.array([-1.0, -2.0, -3.0, -4.0])
    set_identity(layer, images.shape, class_token=class_token)
    outputs = ops.convert_to_numpy(layer(images))
    assert outputs.shape == (2, 5, hidden_dim)
    np.testing.assert_allclose(outputs[:, 0], np.broadcast_to(class_token, (2, 4)))
    positions = 1000.0 * np.arange(1, 5)[None, :, None]
    np.testing.assert_allclose(outputs[:, 1:], numpy_patches(images, 2, 2) + positions, rtol=1e-6)


def test_integer_images_equal_float_images():
    images = np.random.randint(0, 256, size=(2, 4, 4, 1)).astype("uint8")
    layer = PatchEmbedding(2, 4)
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(images)), ops.convert_to_numpy(layer(images.astype("float32"))), rtol=1e-6
    )


def test_compute_output_shape_matches_the_call():
    layer = PatchEmbedding((2, 3), 12, use_class_token=True)
    images = np.zeros((2, 4, 6, 2), "float32")
    assert layer.compute_output_shape(images.shape) == tuple(layer(images).shape) == (2, 5, 12)
    assert PatchEmbedding(4, 8).compute_output_shape((None, 28, 28, 1)) == (None, 49, 8)


def test_sublayers_follow_the_dtype_policy():
    layer = PatchEmbedding(2, 4, use_class_token=True, stem_filters=(3,), dtype="mixed_bfloat16")
    outputs = layer(np.zeros((1, 4, 4, 1), "float32"))
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    assert layer.patch_projection.dtype_policy.name == "mixed_bfloat16"
    assert layer.position_embedding.dtype_policy.name == "mixed_bfloat16"
    stem = layer.stem_convolutions + layer.stem_normalizations
    assert len(stem) == 2 and all(l.dtype_policy.name == "mixed_bfloat16" for l in stem)
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"patch_size": 0}, "patch_size"),
        ({"patch_size": (2,)}, "patch_size"),
        ({"patch_size": (2, 0)}, "patch_size"),
        ({"patch_size": 2.5}, "patch_size"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"hidden_dim": None}, "hidden_dim"),
        ({"stem_filters": 32}, "stem_filters"),
        ({"stem_filters": (32, 0)}, "stem_filters"),
        ({"patch_size": 2, "stem_filters": (8, 8)}, "multiple of 4"),
        ({"patch_size": (4, 6), "stem_filters": (8, 8)}, "multiple of 4"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PatchEmbedding(**{"patch_size": 2, "hidden_dim": 4, **kwargs})


def test_grayscale_images_without_channel_axis():
    with pytest.raises(ValueError, match="channel axis"):
        PatchEmbedding(2, 4)(np.zeros((2, 4, 4), "float32"))


def test_image_size_not_divisible_by_patch_size():
    with pytest.raises(ValueError, match="30x28 is not divisible by the patch size 4x4.*28x28"):
        PatchEmbedding(4, 4)(np.zeros((1, 30, 28, 1), "float32"))


def test_unknown_image_size():
    with pytest.raises(ValueError, match="known image size"):
        PatchEmbedding(4, 4)(keras.Input((None, None, 3)))


def test_other_image_size_than_the_build_size():
    layer = PatchEmbedding(2, 4)
    layer(np.zeros((2, 4, 4, 1), "float32"))
    with pytest.raises(ValueError, match="built for 4x4 images"):
        layer(np.zeros((2, 6, 6, 1), "float32"))
