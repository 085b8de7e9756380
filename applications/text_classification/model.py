"""The tokenizer and the Transformer encoder classifier: raw strings in, class probabilities out.

`learn_vocabulary` learns a WordPiece vocabulary from the training texts (keras_hub's
`compute_word_piece_vocabulary`), `build_tokenizer` wraps it in keras_hub's
`WordPieceTokenizer`, and `build_classifier` puts that tokenizer in front of a small
Transformer encoder (`keras_attention.layers`) and a pooling head
(`keras_attention.heads.ClassificationHead`). The result is a `TextClassifier`: a functional
model whose input is a string tensor, which `predict`s on a plain list of strings and knows its
`class_names`. It saves as one `.keras` file (the vocabulary travels as an asset of the
tokenizer) that reloads with `safe_mode=True` and no `custom_objects` once
`applications.text_classification` is imported.
"""

import collections
import re
import unicodedata

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from applications.common.errors import UserError
from keras_attention.heads import ClassificationHead
from keras_attention.layers import TokenAndPositionEmbedding
from keras_attention.layers import TransformerEncoder

PAD_TOKEN = "[PAD]"  # id 0: padding, masked everywhere downstream
UNK_TOKEN = "[UNK]"  # id 1: what no piece of the vocabulary covers
MASK_TOKEN = "[MASK]"  # id 2 in a pretraining vocabulary: what masked-LM pretraining hides
RESERVED_TOKENS = [PAD_TOKEN, UNK_TOKEN]
# Learned entries a vocabulary must have room for after its reserved tokens. With fewer than
# the reserved tokens the learner cuts `[UNK]` off and the tokenizer cannot be built; with the
# reserved tokens alone every text is a row of `[UNK]`s. A useful vocabulary has thousands.
MIN_LEARNED_PIECES = 8


# === Vocabulary and tokenizer ===


def check_vocabulary_size(vocabulary_size, reserved_tokens=RESERVED_TOKENS):
    """A `UserError` unless a vocabulary of `vocabulary_size` holds `reserved_tokens` and a few pieces.

    Example:
    >>> check_vocabulary_size(10)
    >>> check_vocabulary_size(9)
    Traceback (most recent call last):
    ...
    applications.common.errors.UserError: --vocabulary-size 9 is too small: ...
    """
    smallest = len(reserved_tokens) + MIN_LEARNED_PIECES
    if vocabulary_size < smallest:
        raise UserError(
            f"--vocabulary-size {vocabulary_size} is too small: the vocabulary starts with the "
            f"{len(reserved_tokens)} reserved tokens {' '.join(reserved_tokens)} and needs room for "
            f"learned pieces after them. Give --vocabulary-size {smallest} or more (a useful one has "
            "thousands; the default is 8000)."
        )


def learn_vocabulary(texts, vocabulary_size, min_word_count=2, lowercase=True,
                     reserved_tokens=RESERVED_TOKENS):
    """Learn a WordPiece vocabulary of at most `vocabulary_size` entries from `texts`.

    keras_hub's learner keeps only pieces seen at least 10 times, which on a few thousand
    sentences gives a small, mostly sub-word vocabulary (about 2,100 entries for SST-2's
    6,920 sentences). Whole words seen at least `min_word_count` times are added after its
    pieces, most frequent first, up to `vocabulary_size`: the tokenizer matches a word whole
    when it is in the vocabulary and falls back to pieces otherwise. On SST-2 this took
    dev accuracy from about 76% to about 79% with the same model.

    Args:
        texts: list of str. The training texts.
        vocabulary_size: int. The most entries.
        min_word_count: int. Add whole words seen at least this often; 0 adds none.
        lowercase: bool. Lowercase (and strip accents) first, as the tokenizer will.
        reserved_tokens: list of str. The first entries. Defaults to `[PAD]`, `[UNK]`
            (pretraining adds `[MASK]`).

    Returns:
        The vocabulary, a list of str: the reserved tokens, then pieces, then words.
    """
    check_vocabulary_size(vocabulary_size, reserved_tokens)
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), dtype=tf.string))
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        dataset.batch(1024),
        vocabulary_size=vocabulary_size,
        lowercase=lowercase,
        strip_accents=lowercase,
        reserved_tokens=list(reserved_tokens),
    )
    if min_word_count > 0:
        known = set(vocabulary)
        counts = collections.Counter(word for text in texts for word in _words(text, lowercase))
        words = [
            word
            for word, count in counts.most_common()
            if count >= min_word_count and word not in known
        ]
        vocabulary = vocabulary + words[: max(vocabulary_size - len(vocabulary), 0)]
    return vocabulary


def build_tokenizer(vocabulary, sequence_length, lowercase=True):
    """keras_hub's `WordPieceTokenizer`: strings to `(B, sequence_length)` ids, 0-padded.

    Longer texts are truncated to their first `sequence_length` pieces; a word longer than
    100 characters is one `[UNK]`.
    """
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary,
        sequence_length=sequence_length,
        lowercase=lowercase,
        strip_accents=lowercase,
        oov_token=UNK_TOKEN,
        name="tokenizer",
    )


def _words(text, lowercase):
    """Split like the tokenizer's pre-tokenization: words and single punctuation marks."""
    if lowercase:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(char for char in text if unicodedata.category(char) != "Mn")
    return re.findall(r"\w+|[^\w\s]", text)


# === The classifier ===


@keras.saving.register_keras_serializable(package="keras_attention")
class TextClassifier(keras.Model):
    """A functional text classifier that takes raw strings.

    The functional model's input is a string tensor `(B,)` and its output the class
    probabilities `(B, num_classes)`. Unlike a plain functional model, `predict`,
    `evaluate` and `__call__` also take a list (or NumPy array) of Python strings, and the
    model carries its `class_names`.

    Args:
        inputs, outputs, name: as for a functional `keras.Model`.
        class_names: list of str. The label of each output index. Defaults to `None`.
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        class_names = kwargs.pop("class_names", None)
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.class_names = None if class_names is None else [str(c) for c in class_names]

    def predict(self, x, *args, **kwargs):
        return super().predict(as_string_tensor(x), *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        return super().evaluate(as_string_tensor(x), y, *args, **kwargs)

    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(as_string_tensor(inputs), *args, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["class_names"] = self.class_names
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        class_names = config.pop("class_names", None)
        model = super().from_config(config, custom_objects=custom_objects)
        model.class_names = class_names
        return model


def as_string_tensor(x):
    """A list, tuple or NumPy array of str becomes a `tf.string` tensor; anything else passes."""
    if isinstance(x, str):
        x = [x]
    if isinstance(x, (list, tuple)) and all(isinstance(item, (str, bytes)) for item in x):
        return tf.constant(list(x), dtype=tf.string)
    if isinstance(x, np.ndarray) and x.dtype.kind in ("U", "S", "O"):
        return tf.constant(x.astype(object).tolist(), dtype=tf.string)
    return x


def build_classifier(
    tokenizer,
    class_names,
    hidden_dim,
    num_layers,
    num_heads,
    intermediate_dim,
    dropout,
    embedding_dropout,
    pooling,
    ensemble_size=1,
):
    """The classifier: tokenizer, then `ensemble_size` encoders whose probabilities average.

    Each member is token and position embedding, `num_layers` pre-norm Transformer encoder
    blocks, a final layer normalization and a `ClassificationHead`; members share nothing
    but the tokenizer, and train side by side on the same batches, each with its own loss,
    so that they differ by their initialization and dropout. Averaging a few small members
    is the most reliable gain we measured on small data (SST-2: see the recipe).

    Returns:
        `(classifier, training_model)`: the `TextClassifier` (strings to the averaged
        probabilities `(B, num_classes)`), the model saved and served; and the model that
        training fits on pre-tokenized batches (see `training_model`).
    """
    if ensemble_size < 1:
        raise ValueError(f"`ensemble_size` must be at least 1. Received: {ensemble_size}")
    sequence_length = tokenizer.sequence_length
    token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    members = [
        _member(
            token_ids, tokenizer.vocabulary_size(), len(class_names), hidden_dim, num_layers,
            num_heads, intermediate_dim, dropout, embedding_dropout, pooling, f"member_{index}",
        )
        for index in range(ensemble_size)
    ]
    token_classifier = keras.Model(
        token_ids, _average([member(token_ids) for member in members]), name="token_classifier"
    )
    text = keras.Input((), dtype="string", name="text")
    classifier = TextClassifier(
        text,
        token_classifier(tokenizer(text)),
        name="text_classifier",
        class_names=class_names,
    )
    return classifier, training_model(classifier)


def training_model(classifier):
    """The model training fits, over the layers of `classifier` (built or loaded).

    Token ids `(B, T)` to a dict: `members`, every member's probabilities
    `(B, ensemble_size, num_classes)` (the loss, averaged over members, trains each member on
    its own predictions), and `ensemble`, their average `(B, num_classes)`, the classifier's
    output (for the metrics).
    """
    members = parts(classifier)["members"]
    token_ids = keras.Input(members[0].input.shape[1:], dtype="int32", name="token_ids")
    probabilities = [member(token_ids) for member in members]  # each [B, num_classes]
    return keras.Model(
        token_ids,
        {"members": ops.stack(probabilities, axis=1), "ensemble": _average(probabilities)},
        name="training_model",
    )


def _average(probabilities):
    # float32 whatever the policy, as the heads' outputs: probabilities, not activations.
    if len(probabilities) == 1:
        return keras.layers.Identity(name="ensemble", dtype="float32")(probabilities[0])
    return keras.layers.Average(name="ensemble", dtype="float32")(probabilities)


def _member(
    token_ids, vocabulary_size, num_classes, hidden_dim, num_layers, num_heads,
    intermediate_dim, dropout, embedding_dropout, pooling, name,
):
    """One encoder classifier: token ids `(B, T)` to probabilities `(B, num_classes)`."""
    # === Layers ===
    encoder = encoder_layers(
        vocabulary_size, token_ids.shape[1], hidden_dim, num_layers, num_heads,
        intermediate_dim, dropout, embedding_dropout,
    )
    head = ClassificationHead(
        num_classes, pooling=pooling, activation="softmax", dropout=dropout, name="head"
    )

    # === Functional Model ===
    x, padding_mask = apply_encoder(encoder, token_ids)  # [B, T, hidden_dim], [B, T]
    probabilities = head(x, padding_mask=padding_mask)  # [B, num_classes]
    return keras.Model(token_ids, probabilities, name=name)


# === The encoder, shared by the classifier and pretraining (pretraining.py) ===


def encoder_layers(
    vocabulary_size, sequence_length, hidden_dim, num_layers, num_heads, intermediate_dim,
    dropout, embedding_dropout,
):
    """The encoder's layers, bottom up, under the names `ENCODER_LAYER_NAMES` matches.

    Token and position embedding, its dropout, `num_layers` pre-norm Transformer encoder
    blocks and a final layer normalization. The classifier's members and the pretraining
    encoder (`pretraining.py`) are both built from this, so their weights correspond name
    by name (`copy_encoder_weights`).
    """
    return [
        TokenAndPositionEmbedding(
            vocabulary_size, sequence_length, hidden_dim, mask_zero=True, name="embedding"
        ),
        keras.layers.Dropout(embedding_dropout, name="embedding_dropout"),
        *[
            TransformerEncoder(
                intermediate_dim,
                num_heads,
                dropout=dropout,
                activation="gelu",
                normalize_first=True,
                name=f"encoder_{index}",
            )
            for index in range(num_layers)
        ],
        keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm"),
    ]


def apply_encoder(layers, token_ids):
    """Run `encoder_layers` on token ids `(B, T)`: hidden states `(B, T, D)` and the padding mask."""
    embedding, embedding_dropout, *blocks, final_norm = layers
    padding_mask = ops.not_equal(token_ids, 0)  # [B, T], True = real token
    x = embedding_dropout(embedding(token_ids))  # [B, T, hidden_dim]
    for block in blocks:
        x = block(x, padding_mask=padding_mask)  # [B, T, hidden_dim]
    return final_norm(x), padding_mask


def copy_encoder_weights(source, target):
    """Copy the encoder weights of model `source` into model `target`, layer by name.

    Both hold the layers of `encoder_layers` (the pretrained encoder, a classifier member).
    Raises `ValueError` when their sizes differ.

    Returns:
        The names of the layers copied.
    """
    copied = []
    for layer in source.layers:
        if layer.weights and (layer.name in ("embedding", "final_norm") or
                              re.fullmatch(r"encoder_\d+", layer.name)):
            target_layer = target.get_layer(layer.name)
            shapes = [tuple(w.shape) for w in layer.weights]
            if shapes != [tuple(w.shape) for w in target_layer.weights]:
                raise ValueError(
                    f"The layer {layer.name!r} has weights of shapes {shapes} in the pretrained "
                    f"encoder and {[tuple(w.shape) for w in target_layer.weights]} in the model."
                )
            target_layer.set_weights(layer.get_weights())
            copied.append(layer.name)
    return copied


def parts(classifier):
    """The tokenizer, the token-ids model and the members of a classifier."""
    token_classifier = classifier.get_layer("token_classifier")
    members = [layer for layer in token_classifier.layers if layer.name.startswith("member_")]
    return {
        "tokenizer": classifier.get_layer("tokenizer"),
        "token_classifier": token_classifier,
        "members": members,
    }


def attention_over_tokens(classifier, text):
    """The tokens of `text` and the attention the model pays to them.

    Attention scores are averaged over the members of an ensemble (they attend over the
    same tokens).

    Returns:
        A dict: `tokens` (the pieces, padding dropped), `encoder_scores` (one
        `(num_heads, T, T)` array per encoder block) and, with `pooling="attention"`, the
        pooling weights `(num_heads, T)` under `pooling_weights`.
    """
    layers = parts(classifier)
    tokenizer = layers["tokenizer"]
    token_ids = np.asarray(tokenizer(tf.constant([text])))  # [1, T]
    length = max(int(np.count_nonzero(token_ids)), 1)
    padding_mask = token_ids != 0
    member_scores, member_weights = [], []
    for member in layers["members"]:
        x = member.get_layer("embedding")(token_ids)
        scores = []
        for layer in member.layers:
            if isinstance(layer, TransformerEncoder):
                x, block_scores = layer(x, padding_mask=padding_mask, return_attention_scores=True)
                scores.append(ops.convert_to_numpy(block_scores)[0, :, :length, :length])
        member_scores.append(scores)
        head = member.get_layer("head")
        if head.pooling == "attention":
            x = member.get_layer("final_norm")(x)
            _, weights = head.attention_pooling(
                ops.cast(x, head.compute_dtype),
                padding_mask=padding_mask,
                return_attention_scores=True,
            )
            member_weights.append(ops.convert_to_numpy(weights)[0, :, :length])
    result = {
        "tokens": [tokenizer.id_to_token(int(i)) for i in token_ids[0, :length]],
        "encoder_scores": [np.mean(blocks, axis=0) for blocks in zip(*member_scores)],
    }
    if member_weights:
        result["pooling_weights"] = np.mean(member_weights, axis=0)
    return result
