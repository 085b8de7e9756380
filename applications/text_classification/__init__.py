"""Text classification: a small Transformer encoder over WordPiece tokens, from raw strings.

`keras-attention train text-classification --data sst2` trains one; see
`docs/applications/text_classification.md`. The pieces: `data` (readers and splits),
`model` (tokenizer, `TextClassifier`), `recipe` (settings, training, evaluation),
`evaluation` (metrics and pictures), `command` (the command-line protocol).

A saved model reloads with `keras.saving.load_model(path, safe_mode=True)` once its class is
registered, which importing `applications.text_classification.model` (or asking this package
for `TextClassifier`) does. The package imports keras only on first use, so that
`keras-attention --help` stays fast.
"""

import importlib

_EXPORTS = {
    "TextClassifier": "model",
    "SETTINGS": "recipe",
    "train": "recipe",
    "finetune": "recipe",
    "evaluate": "recipe",
    "predict": "recipe",
    "export": "recipe",
    "load_splits": "data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f"applications.text_classification.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'applications.text_classification' has no attribute {name!r}")


def __dir__():
    return __all__
