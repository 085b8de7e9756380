"""The shared layer-test harness: what every public layer must satisfy.

`run_layer_test` checks, for one layer class and tiny inputs:
1. the config round trip (`from_config(get_config())` gives the same config,
   and `get_config()` holds exactly the `__init__` arguments);
2. build and weight counts (trainable and non-trainable);
3. a symbolic call (`keras.Input`) with the same output shapes as eager;
4. an eager call;
5. one training step that changes the trainable weights and gives a finite loss;
6. each dtype policy (`float32`, `mixed_float16`, `mixed_bfloat16`): finite
   outputs in the policy's compute dtype;
7. a `.keras` save and reload with `safe_mode=True` and no `custom_objects`,
   giving equal outputs.
Behaviour tests (equivalence, invariance, golden values, errors) come after,
in each layer's own test file.
"""

import inspect
import os
import tempfile

import keras
import numpy as np
from keras import ops

DTYPE_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def as_tuple(outputs):
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def to_numpy(outputs):
    return [ops.convert_to_numpy(ops.cast(x, "float32")) for x in as_tuple(outputs)]


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    call_kwargs=None,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=0,
    run_training_check=True,
    run_mixed_precision_check=True,
    run_save_check=True,
    atol=1e-5,
):
    """Run the standard checks on `layer_cls(**init_kwargs)(input_data)`.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: a NumPy array, or a dict of NumPy arrays passed as keyword
            arguments of `call` (the first key is the positional input).
        call_kwargs: dict of further (non-tensor) call arguments.
        expected_output_shape: a shape tuple, or a tuple of shape tuples when
            the layer returns several tensors.
        expected_num_trainable_weights: int, checked after build.
        expected_num_non_trainable_weights: int, checked after build.
        run_training_check: fit one step and check the weights move.
        run_mixed_precision_check: call under each dtype policy.
        run_save_check: `.keras` round trip with equal outputs.
        atol: tolerance of the save/load and symbolic/eager comparisons.

    Returns:
        The eager outputs, as a list of NumPy arrays.
    """
    call_kwargs = call_kwargs or {}
    _check_config(layer_cls, init_kwargs)

    layer = layer_cls(**init_kwargs)
    outputs = _call(layer, input_data, call_kwargs)
    eager = to_numpy(outputs)
    if expected_output_shape is not None:
        expected = (
            expected_output_shape
            if isinstance(expected_output_shape[0], (tuple, list))
            else (expected_output_shape,)
        )
        got = tuple(tuple(x.shape) for x in eager)
        assert got[: len(expected)] == tuple(tuple(s) for s in expected), (
            f"{layer_cls.__name__}: output shapes {got}, expected {expected}"
        )
    for x in eager:
        assert np.all(np.isfinite(x)), f"{layer_cls.__name__}: non-finite output"
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"{layer_cls.__name__}: {len(layer.trainable_weights)} trainable "
            f"weights, expected {expected_num_trainable_weights}"
        )
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, (
        f"{layer_cls.__name__}: {len(layer.non_trainable_weights)} non-trainable "
        f"weights, expected {expected_num_non_trainable_weights}"
    )

    model = _functional_model(layer_cls, init_kwargs, input_data, call_kwargs)
    symbolic_shapes = [tuple(x.shape[1:]) for x in as_tuple(model.outputs)]
    eager_shapes = [tuple(x.shape[1:]) for x in eager]
    for symbolic, actual in zip(symbolic_shapes, eager_shapes):
        assert all(s is None or s == a for s, a in zip(symbolic, actual)) and len(symbolic) == len(actual), (
            f"{layer_cls.__name__}: symbolic shape {symbolic} differs from eager shape {actual}"
        )

    if run_training_check and model.trainable_weights:
        _check_training(model, input_data)
    if run_mixed_precision_check:
        _check_dtype_policies(layer_cls, init_kwargs, input_data, call_kwargs)
    if run_save_check:
        _check_save_load(model, input_data, atol)
    return eager


def _check_config(layer_cls, init_kwargs):
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    signature = inspect.signature(layer_cls.__init__)
    own_args = [
        name
        for name, parameter in signature.parameters.items()
        if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    ]
    base_keys = set(keras.layers.Layer().get_config())
    missing = [name for name in own_args if name not in config]
    assert not missing, f"{layer_cls.__name__}.get_config() misses {missing}"
    extra = [k for k in config if k not in own_args and k not in base_keys]
    assert not extra, f"{layer_cls.__name__}.get_config() has derived keys {extra}"
    restored = layer_cls.from_config(config)
    assert restored.get_config() == config, f"{layer_cls.__name__}: config round trip differs"
    registered = keras.saving.get_registered_name(layer_cls)
    assert registered == f"keras_attention>{layer_cls.__name__}", (
        f"{layer_cls.__name__} is not registered under 'keras_attention': {registered}"
    )


def _split(input_data):
    if isinstance(input_data, dict):
        names = list(input_data)
        return input_data[names[0]], {name: input_data[name] for name in names[1:]}
    return input_data, {}


def _call(layer, input_data, call_kwargs, training=None):
    first, rest = _split(input_data)
    kwargs = dict(rest, **call_kwargs)
    if training is not None:
        kwargs["training"] = training
    return layer(first, **kwargs)


def _model_inputs(input_data):
    if isinstance(input_data, dict):
        return dict(input_data)
    return input_data


def _functional_model(layer_cls, init_kwargs, input_data, call_kwargs):
    """Wrap a fresh layer in a functional model fed by `keras.Input`s."""
    layer = layer_cls(**init_kwargs)
    if isinstance(input_data, dict):
        inputs = {
            name: keras.Input(shape=np.shape(x)[1:], dtype=_input_dtype(x), name=name)
            for name, x in input_data.items()
        }
        names = list(inputs)
        rest = {name: inputs[name] for name in names[1:]}
        outputs = layer(inputs[names[0]], **rest, **call_kwargs)
    else:
        inputs = keras.Input(shape=np.shape(input_data)[1:], dtype=_input_dtype(input_data))
        outputs = layer(inputs, **call_kwargs)
    return keras.Model(inputs, outputs)


def _input_dtype(x):
    x = np.asarray(x)
    if x.dtype == bool:
        return "bool"
    if np.issubdtype(x.dtype, np.integer):
        return "int32"
    return "float32"


def _check_training(model, input_data):
    """One optimizer step on the sum of squares of every output."""
    before = [ops.convert_to_numpy(w).copy() for w in model.trainable_weights]

    class SumOfSquares(keras.Model):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, inputs):
            outputs = as_tuple(self.inner(inputs))
            return ops.sum(
                ops.stack([ops.mean(ops.square(ops.cast(x, "float32"))) for x in outputs])
            )

    wrapper = SumOfSquares(model)
    wrapper.compile(optimizer=keras.optimizers.SGD(0.1), loss=lambda y_true, y_pred: y_pred)
    first, _ = _split(input_data)
    batch_size = np.shape(first)[0]
    history = wrapper.fit(
        _model_inputs(input_data), np.zeros((batch_size,)), batch_size=batch_size, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    after = [ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(not np.allclose(b, a) for b, a in zip(before, after)), "training changed no weight"


def _check_dtype_policies(layer_cls, init_kwargs, input_data, call_kwargs):
    for policy in DTYPE_POLICIES:
        layer = layer_cls(**init_kwargs, dtype=policy)
        outputs = as_tuple(_call(layer, input_data, call_kwargs))
        compute_dtype = keras.DTypePolicy(policy).compute_dtype
        first = outputs[0]
        if keras.backend.is_float_dtype(first.dtype):
            assert keras.backend.standardize_dtype(first.dtype) == compute_dtype, (
                f"{layer_cls.__name__} under {policy}: output dtype {first.dtype}, "
                f"expected {compute_dtype}"
            )
        for x in to_numpy(outputs):
            assert np.all(np.isfinite(x)), f"{layer_cls.__name__}: non-finite output under {policy}"
        for weight in layer.weights:
            if keras.backend.is_float_dtype(weight.dtype):
                assert keras.backend.standardize_dtype(weight.dtype) == "float32", (
                    f"{layer_cls.__name__} under {policy}: weight {weight.path} is {weight.dtype}"
                )


def _check_save_load(model, input_data, atol):
    expected = to_numpy(model(_model_inputs(input_data)))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    got = to_numpy(restored(_model_inputs(input_data)))
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=atol, rtol=atol)
