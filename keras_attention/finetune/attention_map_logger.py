import os

import keras

from keras_attention.visualize import attention_scores_model
from keras_attention.visualize import plot_attention


@keras.saving.register_keras_serializable(package="keras_attention")
class AttentionMapLogger(keras.callbacks.Callback):
    """Save the attention maps of fixed examples every few epochs.

    Watching how attention sharpens (or collapses onto padding or one token)
    tells more about a Transformer's training than the loss does. Every
    `every_n_epochs` epochs, the callback runs the fixed `inputs` through
    the model, reads the scores of every attention-bearing layer (see
    `keras_attention.visualize.attention_scores_model`) and saves one PNG
    per example and layer, heads averaged:
    `{directory}/epoch_{epoch:03d}/{layer}_example_{i}.png`.

    Args:
        inputs: the model's inputs for the examples to draw (an array or a
            dict of arrays), a small batch.
        directory: str. Where the pictures go.
        every_n_epochs: int. Defaults to `1`.
        layer_names: list of str. The layers to draw. Defaults to `None`:
            every attention-bearing layer.
        labels: list of list of str. Token labels of each example, for the
            axes. Defaults to `None`.

    Example:

    >>> import keras, numpy as np, tempfile, os
    >>> from keras_attention.layers import TransformerEncoder
    >>> from keras_attention.finetune import AttentionMapLogger
    >>> inputs = keras.Input((4, 8))
    >>> x = TransformerEncoder(16, num_heads=2, name="encoder")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(1)(x))
    >>> model.compile(optimizer="adam", loss="mse")
    >>> directory = tempfile.mkdtemp()
    >>> logger = AttentionMapLogger(np.ones((1, 4, 8)), directory, every_n_epochs=2)
    >>> _ = model.fit(np.ones((4, 4, 8)), np.zeros((4, 4, 1)), epochs=2, verbose=0,
    ...               callbacks=[logger])
    >>> sorted(os.listdir(directory)), os.listdir(os.path.join(directory, "epoch_002"))
    (['epoch_002'], ['encoder_example_0.png'])
    """

    def __init__(self, inputs, directory, every_n_epochs=1, layer_names=None, labels=None):
        super().__init__()
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(
                f"`every_n_epochs` must be a positive integer. Received: {every_n_epochs!r}"
            )
        self.inputs = inputs
        self.directory = directory
        self.every_n_epochs = every_n_epochs
        self.layer_names = layer_names
        self.labels = labels

    def on_train_begin(self, logs=None):
        attention_scores_model(self.model, self.layer_names)  # Fails early on a typo.

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        # A fresh copy each time: it holds the weights of this epoch.
        scores_model = attention_scores_model(self.model, self.layer_names)
        scores = scores_model.predict(self.inputs, verbose=0)
        folder = os.path.join(self.directory, f"epoch_{epoch + 1:03d}")
        for name, layer_scores in scores.items():
            for index, example_scores in enumerate(layer_scores):
                labels = self.labels[index] if self.labels else None
                plot_attention(
                    example_scores,
                    os.path.join(folder, f"{name.replace('/', '_')}_example_{index}.png"),
                    x_labels=labels,
                    y_labels=labels,
                    title=f"{name}, epoch {epoch + 1}",
                )

    def get_config(self):
        # The examples are a small batch: stored as nested lists, so the
        # config is plain JSON.
        inputs = keras.tree.map_structure(
            lambda x: keras.ops.convert_to_numpy(x).tolist(), self.inputs
        )
        return {
            "inputs": inputs,
            "directory": self.directory,
            "every_n_epochs": self.every_n_epochs,
            "layer_names": self.layer_names,
            "labels": self.labels,
        }

    @classmethod
    def from_config(cls, config):
        # `get_config` stores the examples as nested lists: tensors again.
        inputs = config["inputs"]
        if isinstance(inputs, dict):
            inputs = {name: keras.ops.convert_to_tensor(x) for name, x in inputs.items()}
        else:
            inputs = keras.ops.convert_to_tensor(inputs)
        return cls(**{**config, "inputs": inputs})
