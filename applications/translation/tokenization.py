"""Subword vocabularies learned from the training text, and reversible tokenization.

The vocabularies are SentencePiece unigram models trained on the training
sentences (with keras_hub's settings, see `learn_vocabulary`), used through
`keras_hub.tokenizers.SentencePieceTokenizer`. SentencePiece keeps the spaces
in its pieces (`▁bike` `.`), so detokenizing gives back the exact text
(`T-Shirt`, `don't`, `"Hallo"`), which sacreBLEU's scores depend on, and it
learns a vocabulary of Multi30k in seconds. keras_hub's WordPiece learner (a
Python search over frequency thresholds) took over two minutes of CPU for the
same text, and its default pre-splitting on punctuation would detokenize
`T-Shirt` as `T - Shirt`.

Ids 0-3 are the same in every vocabulary: padding, unknown, start, end. Text
is NFKC-normalized; characters the training text never showed become the
unknown token (printed as ` ⁇ `).
"""

import io
import re

import keras_hub
import tensorflow as tf

from applications.common import UserError

PAD, UNKNOWN, START, END = "<pad>", "<unk>", "<s>", "</s>"
PAD_ID, UNKNOWN_ID, START_ID, END_ID = 0, 1, 2, 3
# SentencePiece's mark of a word start (a space before the piece).
WORD_START = "\u2581"


def learn_vocabulary(sentences, vocabulary_size):
    """Train a SentencePiece unigram model of about `vocabulary_size` pieces on `sentences`.

    The settings of keras_hub's `compute_sentence_piece_proto` (ids 0-3,
    NFKC), plus two it does not expose: every character of the training text
    gets a piece (`character_coverage=1.0`; the default 0.9995 loses `Ä`,
    `Ü`, `é` and digits of Multi30k, so 26 of its 1,000 German test
    references could not be written), and the size is a soft limit, so a
    small corpus gets the vocabulary it can fill instead of an error.

    Args:
        sentences: list of str.
        vocabulary_size: int.

    Returns:
        The serialized model proto (bytes), for `make_tokenizer`.
    """
    import sentencepiece

    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter([s for s in sentences if s]),
            model_writer=model,
            vocab_size=vocabulary_size,
            model_type="unigram",
            character_coverage=1.0,
            hard_vocab_limit=False,
            normalization_rule_name="nmt_nfkc",
            pad_id=PAD_ID,
            unk_id=UNKNOWN_ID,
            bos_id=START_ID,
            eos_id=END_ID,
            num_threads=2,
            minloglevel=2,  # Errors only: no settings dump on stderr.
        )
    except RuntimeError as error:
        # Every character needs a piece (`character_coverage=1.0`), and `hard_vocab_limit=False`
        # does not lift that floor: "Vocabulary size is smaller than required_chars. 5 vs 69."
        # The floor depends on the text, so it is known only here.
        required = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(error))
        if required is None:
            raise
        raise UserError(
            f"--vocabulary-size {vocabulary_size} is too small for the training text: its characters "
            f"and the 4 special tokens need {required.group(1)} pieces. Give --vocabulary-size "
            f"{required.group(1)} or more (the default is 8000)."
        ) from None
    return model.getvalue()


def make_tokenizer(proto):
    """A `SentencePieceTokenizer` of a model proto (see `tokenize` and `detokenize`)."""
    return keras_hub.tokenizers.SentencePieceTokenizer(proto=proto, dtype="int32")


def tokenize(tokenizer, sentences):
    """Token ids of a batch of sentences: a `tf.RaggedTensor` `(B, None)` of int32.

    Runs TensorFlow ops, inside `tf.function` and `tf.data` as well as eagerly.
    """
    if tf.executing_eagerly():
        return _run_traced(tokenizer, "tokenize", tf.convert_to_tensor(sentences, tf.string))
    return tf.cast(tokenizer.tokenize(sentences), tf.int32)  # [B, None] pieces


def detokenize(tokenizer, token_ids):
    """Sentences (a `tf.Tensor` of strings) from token ids `(B, L)`.

    Everything from the first end token on, start tokens and padding are
    dropped; the pieces are joined, with
    a space where the text had one.
    """
    if tf.executing_eagerly():
        return _run_traced(tokenizer, "detokenize", tf.convert_to_tensor(token_ids, tf.int32))
    token_ids = tf.cast(token_ids, tf.int32)
    before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(token_ids, END_ID), tf.int32), axis=1), 0)
    keep = before_end & (token_ids != PAD_ID) & (token_ids != START_ID)
    return tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, keep))  # [B]


# keras_hub tokenizers take their TensorFlow path inside a tf.function and a
# slow pure-Python path outside, so eager calls go through one traced function
# per tokenizer and direction.
_TRACED = {}


def _run_traced(tokenizer, direction, inputs):
    try:
        return _traced(tokenizer, direction)(inputs)
    except tf.errors.NotFoundError:
        # `keras.backend.clear_session()` clears TensorFlow's kernel cache,
        # which owns the SentencePiece model resources of existing tokenizers
        # (tensorflow_text's TODO b/318839908): rebuild the resource and retrace.
        tokenizer.set_proto(tokenizer.proto)
        for key in [k for k in _TRACED if k[0] is tokenizer]:
            del _TRACED[key]
        return _traced(tokenizer, direction)(inputs)


def _traced(tokenizer, direction):
    key = (tokenizer, direction)
    if key not in _TRACED:
        if direction == "tokenize":
            function = tf.function(lambda x: tokenize(tokenizer, x),
                                   input_signature=[tf.TensorSpec([None], tf.string)])
        else:
            function = tf.function(lambda x: detokenize(tokenizer, x),
                                   input_signature=[tf.TensorSpec([None, None], tf.int32)])
        _TRACED[key] = function
    return _TRACED[key]


def pieces(tokenizer, token_ids):
    """The subword strings of a list of ids (for pictures and messages)."""
    vocabulary = tokenizer.get_vocabulary()
    return [vocabulary[i] for i in token_ids]


def starts_word(piece):
    """Whether a SentencePiece piece begins a new word."""
    return piece.startswith(WORD_START)


def to_text(strings):
    """A `tf.Tensor` of UTF-8 byte strings as a list of Python str."""
    return [s.decode("utf-8") for s in strings.numpy().tolist()]
