"""Getting at attention scores of a trained model, and drawing them."""

import inspect
import os

import keras
import numpy as np


def attention_scores_model(model, layer_names=None):
    """Build a model that maps `model`'s inputs to its layers' attention scores.

    The graph of a functional `model` is traced again
    (`keras.models.clone_model`), and every layer whose `call` takes
    `return_attention_scores` (our attention layers, encoder and decoder
    blocks, and keras's `MultiHeadAttention`) is asked for its scores, with
    the same masks. The new model holds a copy of `model`'s weights at the
    time of the call: build it again to follow further training.

    Args:
        model: a functional `keras.Model`.
        layer_names: list of str. The layers to read. Defaults to `None`:
            every attention-bearing layer.

    Returns:
        A `keras.Model` whose output is a dict from layer name to scores
        (for a decoder: `name/self` and `name/cross`).

    Example:

    >>> import keras, numpy as np
    >>> from keras_attention.layers import TransformerEncoder
    >>> from keras_attention.visualize import attention_scores_model
    >>> inputs = keras.Input((5, 8))
    >>> x = TransformerEncoder(16, num_heads=2, name="encoder")(inputs)
    >>> scores = attention_scores_model(keras.Model(inputs, x))(np.ones((1, 5, 8)))
    >>> {name: tuple(value.shape) for name, value in scores.items()}
    {'encoder': (1, 2, 5, 5)}
    """
    outputs = {}

    def call_function(layer, *args, **kwargs):
        wanted = layer_names is None or layer.name in layer_names
        if not wanted or "return_attention_scores" not in inspect.signature(layer.call).parameters:
            return layer(*args, **kwargs)
        results = layer(*args, **kwargs, return_attention_scores=True)
        if len(results) == 3 and "encoder_sequence" in inspect.signature(layer.call).parameters:
            outputs[f"{layer.name}/self"] = results[1]
            outputs[f"{layer.name}/cross"] = results[2]
        else:
            outputs[layer.name] = results[1]
        return results[0]

    # Trace the graph again with fresh copies of the layers, asking the
    # attention-bearing ones for their scores. Copies, because keras cannot
    # connect a second call of a layer that returns more outputs than its
    # first (keras.layers.MultiHeadAttention included).
    traced = keras.models.clone_model(model, call_function=call_function)
    traced.set_weights(model.get_weights())
    if not outputs:
        raise ValueError(
            f"No attention-bearing layer found in model {model.name!r}"
            + (f" among {layer_names}" if layer_names else "")
            + ". Attention scores come from layers whose call takes "
            "`return_attention_scores`."
        )
    return keras.Model(traced.inputs, outputs, name=f"{model.name}_attention_scores")


def plot_attention(scores, path, x_labels=None, y_labels=None, title=None):
    """Save a heatmap of one attention matrix `(T, S)` (heads averaged) as PNG.

    Args:
        scores: array `(T, S)` or `(N, T, S)`; heads are averaged.
        path: str. Where the PNG goes; its folder is created.
        x_labels: list of str. Labels of the `S` keys. Defaults to `None`.
        y_labels: list of str. Labels of the `T` queries. Defaults to `None`.
        title: str. Defaults to `None`.

    Returns:
        `path`.

    Example:

    >>> import numpy as np, tempfile, os
    >>> from keras_attention.visualize import plot_attention
    >>> path = os.path.join(tempfile.mkdtemp(), "map.png")
    >>> plot_attention(np.eye(3), path, x_labels=list("abc")) == path
    True
    """
    import matplotlib

    matplotlib.use("Agg")  # Files only: no display on servers and in CI.
    import matplotlib.pyplot as plt

    scores = np.asarray(keras.ops.convert_to_numpy(scores), dtype="float32")
    if scores.ndim == 3:
        scores = scores.mean(axis=0)
    if scores.ndim != 2:
        raise ValueError(
            f"`scores` must have shape (T, S) or (N, T, S). Received: shape={scores.shape}"
        )
    height = max(3.0, 0.3 * scores.shape[0])
    width = max(4.0, 0.3 * scores.shape[1])
    figure, axis = plt.subplots(figsize=(width, height))
    image = axis.imshow(scores, cmap="viridis", aspect="auto", vmin=0.0)
    figure.colorbar(image, ax=axis)
    if x_labels is not None:
        axis.set_xticks(range(len(x_labels)), x_labels, rotation=90)
    if y_labels is not None:
        axis.set_yticks(range(len(y_labels)), y_labels)
    if title:
        axis.set_title(title)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
