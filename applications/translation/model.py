"""The translation models: a Transformer and an RNN with attention, and the raw-string `Translator`.

Both sequence-to-sequence networks take `encoder_token_ids` `(B, S)` and
`decoder_token_ids` `(B, T)` (id 0 is padding) and return next-token logits
`(B, T, V)`; both decode one token at a time with a cache through `next`
(keras_hub's sampler protocol, see `keras_attention.generation`) and recompute
the same logits over the whole prefix with `next_uncached`. The `Translator` wraps one
network with its two tokenizers: raw strings in, translations out; it is what
`model.keras` holds.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from applications.translation import tokenization
from keras_attention.generation import BeamSearch, GreedySearch
from keras_attention.heads import LanguageModelHead
from keras_attention.layers import (
    BahdanauAttention,
    LuongAttention,
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
)

ARCHITECTURES = ("transformer", "rnn-attention")
ATTENTIONS = ("bahdanau", "luong")
SEARCHES = ("greedy", "beam")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def _check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1). Received: {name}={value!r}")


def _previous_token(token_ids, index):
    """The token at `index - 1`, `(B, 1)`: the input of the decoding step at `index`."""
    return ops.slice(token_ids, [0, index - 1], [ops.shape(token_ids)[0], 1])


class Seq2SeqDecoding:
    """Decoding without a cache, shared by both networks.

    Each network implements `encode`, `start_cache`, `next` (one cached
    step), `decode(cache, decoder_token_ids, return_attention_scores)`, the
    decoder over a whole target prefix given the encoder outputs in the
    cache, up to the head's input, and `head`.
    """

    def next_uncached(self, token_ids, cache, index):
        """`next` without decoder caches: run the decoder over the whole prefix `token_ids[:, :index]`.

        The encoder outputs still come from the cache (the source does not
        change); the decoder recomputes every position at every step. The
        reference for `next` (the same logits, up to float error) and the
        slow baseline of the decoding benchmark.
        """
        hidden_states = self.decode(cache, token_ids[:, :index])[:, -1]  # [B, D]
        return self.head(hidden_states), hidden_states, cache

    def cross_attention_scores(self, encoder_token_ids, decoder_token_ids):
        """The cross-attention `(B, T, S)` of each target position over the source.

        Transformer: the last decoder block's, averaged over heads.
        """
        cache = self.start_cache(encoder_token_ids, None)
        return self.decode(cache, decoder_token_ids, return_attention_scores=True)[1]


@keras.saving.register_keras_serializable(package="keras_attention")
class TransformerSeq2Seq(Seq2SeqDecoding, keras.Model):
    """An encoder-decoder Transformer for translation (Vaswani et al., 2017).

    Token and learned position embeddings, `num_layers` pre-norm
    `TransformerEncoder` blocks and as many `TransformerDecoder` blocks with
    cross-attention, and a `LanguageModelHead` tied to the target embedding.
    With `share_embeddings=True` (one vocabulary for both languages) the
    encoder and decoder share one embedding too: three-way tying (Press and
    Wolf, 2017).

    Args:
        source_vocabulary_size: int. Source token ids.
        target_vocabulary_size: int. Target token ids.
        sequence_length: int. The longest source and the longest target,
            in tokens (the target counts the start token).
        hidden_dim: int. Model width. Defaults to `256`.
        num_layers: int. Encoder blocks, and decoder blocks. Defaults to `3`.
        num_heads: int. Attention heads. Defaults to `4`.
        intermediate_dim: int. Feed-forward width. Defaults to `1024`.
        dropout: float. Dropout rate everywhere. Defaults to `0.1`.
        share_embeddings: bool. One embedding for both sides; needs equal
            vocabulary sizes. Defaults to `False`.
    """

    def __init__(
        self,
        source_vocabulary_size,
        target_vocabulary_size,
        sequence_length,
        hidden_dim=256,
        num_layers=3,
        num_heads=4,
        intermediate_dim=1024,
        dropout=0.1,
        share_embeddings=False,
        **kwargs,
    ):
        for name, value in (("source_vocabulary_size", source_vocabulary_size),
                            ("target_vocabulary_size", target_vocabulary_size),
                            ("sequence_length", sequence_length), ("hidden_dim", hidden_dim),
                            ("num_layers", num_layers), ("num_heads", num_heads),
                            ("intermediate_dim", intermediate_dim)):
            _check_positive_int(name, value)
        _check_rate("dropout", dropout)
        if share_embeddings and source_vocabulary_size != target_vocabulary_size:
            raise ValueError(
                "share_embeddings=True needs one vocabulary for both languages. Received: "
                f"source_vocabulary_size={source_vocabulary_size}, "
                f"target_vocabulary_size={target_vocabulary_size}."
            )
        if hidden_dim % num_heads:
            raise ValueError(
                f"`hidden_dim` must be divisible by `num_heads`. Received: hidden_dim={hidden_dim}, "
                f"num_heads={num_heads}."
            )

        # === Layers ===
        # Tied embeddings start at N(0, 1/D), as in fairseq: logits of the
        # normalized decoder output (norm about sqrt(D)) start near unit scale.
        # Keras's default uniform(-0.05, 0.05) starts them 10x smaller.
        initializer = keras.initializers.RandomNormal(stddev=hidden_dim**-0.5)
        encoder_embedding = TokenAndPositionEmbedding(
            source_vocabulary_size, sequence_length, hidden_dim, embeddings_initializer=initializer,
            mask_zero=True, name="encoder_embedding"
        )
        decoder_embedding = encoder_embedding if share_embeddings else TokenAndPositionEmbedding(
            target_vocabulary_size, sequence_length, hidden_dim, embeddings_initializer=initializer,
            mask_zero=True, name="decoder_embedding"
        )
        encoder_dropout = keras.layers.Dropout(dropout, name="encoder_embedding_dropout")
        decoder_dropout = keras.layers.Dropout(dropout, name="decoder_embedding_dropout")
        block = dict(intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout,
                     normalize_first=True)
        encoder_layers = [TransformerEncoder(**block, name=f"encoder_layer_{i}") for i in range(num_layers)]
        decoder_layers = [TransformerDecoder(**block, name=f"decoder_layer_{i}") for i in range(num_layers)]
        # Pre-norm blocks leave the residual stream unnormalized: one final norm per stack.
        encoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="encoder_norm")
        decoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")
        head = LanguageModelHead(target_vocabulary_size, embedding=decoder_embedding, name="output_head")

        # === Functional Model ===
        encoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_token_ids")
        decoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_token_ids")
        encoder_padding_mask = ops.not_equal(encoder_token_ids, tokenization.PAD_ID)  # [B, S]
        decoder_padding_mask = ops.not_equal(decoder_token_ids, tokenization.PAD_ID)  # [B, T]
        x = encoder_dropout(encoder_embedding(encoder_token_ids))  # [B, S, D]
        for layer in encoder_layers:
            x = layer(x, padding_mask=encoder_padding_mask)
        encoder_outputs = encoder_norm(x)
        y = decoder_dropout(decoder_embedding(decoder_token_ids))  # [B, T, D]
        for layer in decoder_layers:
            y = layer(y, encoder_outputs, decoder_padding_mask=decoder_padding_mask,
                      encoder_padding_mask=encoder_padding_mask)
        logits = head(decoder_norm(y))  # [B, T, V]
        super().__init__(
            inputs={"encoder_token_ids": encoder_token_ids, "decoder_token_ids": decoder_token_ids},
            outputs=logits,
            **kwargs,
        )

        # === Config ===
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.share_embeddings = share_embeddings
        self.encoder_embedding = encoder_embedding
        self.decoder_embedding = decoder_embedding
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.encoder_norm = encoder_norm
        self.decoder_norm = decoder_norm
        self.head = head

    def encode(self, encoder_token_ids):
        """Encoder outputs `(B, S, D)` and padding mask `(B, S)` of a batch of source ids."""
        encoder_padding_mask = ops.not_equal(encoder_token_ids, tokenization.PAD_ID)
        x = self.encoder_embedding(encoder_token_ids)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=encoder_padding_mask)
        return self.encoder_norm(x), encoder_padding_mask

    def start_cache(self, encoder_token_ids, prompt):
        """The cache for decoding `prompt` `(B, L)` (a start token at position 0).

        Holds the encoder outputs and padding mask, and the self- and
        cross-attention caches of each block, `(B, 2, L or S, N, H)`, filled by
        running the start token through the decoder once (which also fills
        the cross-attention caches). With `prompt=None`, the encoder outputs
        only (for `decode`).
        """
        encoder_outputs, encoder_padding_mask = self.encode(encoder_token_ids)
        if prompt is None:
            return {"encoder_outputs": encoder_outputs, "encoder_padding_mask": encoder_padding_mask}
        batch_size, source_length = ops.shape(encoder_token_ids)[0], ops.shape(encoder_token_ids)[1]
        head_dim = self.hidden_dim // self.num_heads
        dtype = encoder_outputs.dtype
        # One (B, 2, L or S, N, H) tensor per block rather than one stacked
        # tensor: no stacking and slicing of every cache at every step.
        self_attention_shape = (batch_size, 2, ops.shape(prompt)[1], self.num_heads, head_dim)
        cross_attention_shape = (batch_size, 2, source_length, self.num_heads, head_dim)
        cache = {
            "encoder_outputs": encoder_outputs,
            "encoder_padding_mask": encoder_padding_mask,
            "self_attention_cache": tuple(ops.zeros(self_attention_shape, dtype) for _ in self.decoder_layers),
            "cross_attention_cache": tuple(ops.zeros(cross_attention_shape, dtype) for _ in self.decoder_layers),
        }
        _, _, cache = self._step(prompt, cache, 1, fill_cross_attention=True)
        return cache

    def next(self, token_ids, cache, index):
        """One cached decoding step: logits `(B, V)` of the token at `index`."""
        return self._step(token_ids, cache, index, fill_cross_attention=False)

    def _step(self, token_ids, cache, index, fill_cross_attention):
        position = index - 1
        x = self.decoder_embedding(_previous_token(token_ids, index), start_index=position)  # [B, 1, D]
        self_caches, cross_caches = [], []
        for i, layer in enumerate(self.decoder_layers):
            x, self_cache, cross_cache = layer(
                x,
                cache["encoder_outputs"],
                encoder_padding_mask=cache["encoder_padding_mask"],
                self_attention_cache=cache["self_attention_cache"][i],
                self_attention_cache_update_index=position,
                cross_attention_cache=cache["cross_attention_cache"][i],
                cross_attention_cache_update_index=0 if fill_cross_attention else None,
            )
            self_caches.append(self_cache)
            cross_caches.append(cross_cache)
        hidden_states = self.decoder_norm(x)[:, 0]  # [B, D]
        cache = dict(cache)
        cache["self_attention_cache"] = tuple(self_caches)  # layers x [B, 2, L, N, H]
        if fill_cross_attention:
            cache["cross_attention_cache"] = tuple(cross_caches)  # layers x [B, 2, S, N, H]
        return self.head(hidden_states), hidden_states, cache

    def decode(self, cache, decoder_token_ids, return_attention_scores=False):
        """The decoder over whole target prefixes `(B, T)`: the hidden states `(B, T, D)` before the head.

        With `return_attention_scores=True`, also the last block's
        cross-attention averaged over heads, `(B, T, S)`.
        """
        decoder_padding_mask = ops.not_equal(decoder_token_ids, tokenization.PAD_ID)
        y = self.decoder_embedding(decoder_token_ids)
        for layer in self.decoder_layers:
            outputs = layer(y, cache["encoder_outputs"], decoder_padding_mask=decoder_padding_mask,
                            encoder_padding_mask=cache["encoder_padding_mask"],
                            return_attention_scores=return_attention_scores)
            y = outputs[0] if return_attention_scores else outputs
        hidden_states = self.decoder_norm(y)
        if return_attention_scores:
            return hidden_states, ops.mean(outputs[2], axis=1)
        return hidden_states

    def get_config(self):
        return {
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "sequence_length": self.sequence_length,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "share_embeddings": self.share_embeddings,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_attention")
class RNNAttentionSeq2Seq(Seq2SeqDecoding, keras.Model):
    """An RNN encoder-decoder with attention (Bahdanau et al., 2015; Luong et al., 2015).

    A bidirectional GRU encodes the source; a GRU decoder starts from a
    projection of the encoder's final states. At each target position the
    decoder state attends over the encoder outputs (`BahdanauAttention`, or
    `LuongAttention` with the `"general"` score); the context and the state
    make Luong's attentional vector `tanh(W [context; state])`, projected to
    the vocabulary by a `LanguageModelHead` tied to the target embedding. The
    attention reads the decoder state after the RNN step (no input feeding),
    so training runs the decoder GRU over the whole target at once and the
    attention over all positions together, as TensorFlow's NMT tutorial does.

    Args:
        source_vocabulary_size: int. Source token ids.
        target_vocabulary_size: int. Target token ids.
        sequence_length: int. The longest source and target, in tokens
            (decoding stops there).
        embedding_dim: int. Size of the token embeddings and of the
            attentional vector. Defaults to `256`.
        units: int. Decoder GRU units (the encoder has `units // 2` per
            direction). Defaults to `512`.
        attention: str. `"bahdanau"` or `"luong"`. Defaults to `"bahdanau"`.
        dropout: float. Dropout on embeddings and the attentional vector.
            Defaults to `0.2`.
    """

    def __init__(
        self,
        source_vocabulary_size,
        target_vocabulary_size,
        sequence_length,
        embedding_dim=256,
        units=512,
        attention="bahdanau",
        dropout=0.2,
        **kwargs,
    ):
        for name, value in (("source_vocabulary_size", source_vocabulary_size),
                            ("target_vocabulary_size", target_vocabulary_size),
                            ("sequence_length", sequence_length), ("embedding_dim", embedding_dim),
                            ("units", units)):
            _check_positive_int(name, value)
        _check_rate("dropout", dropout)
        if attention not in ATTENTIONS:
            raise ValueError(f"Unknown attention: {attention!r}. Expected one of {ATTENTIONS}.")
        if units % 2:
            raise ValueError(f"`units` must be even (half per encoder direction). Received: units={units}")

        # === Layers ===
        # N(0, 1/E) rather than uniform(-0.05, 0.05): the tied output layer
        # then starts with logits of about unit scale, and learns past the
        # unigram distribution (with the default, a small model stays there).
        initializer = keras.initializers.RandomNormal(stddev=embedding_dim**-0.5)
        encoder_embedding = keras.layers.Embedding(
            source_vocabulary_size, embedding_dim, embeddings_initializer=initializer, mask_zero=True,
            name="encoder_embedding")
        encoder_rnn = keras.layers.Bidirectional(
            keras.layers.GRU(units // 2, return_sequences=True, return_state=True), name="encoder_rnn")
        bridge = keras.layers.Dense(units, activation="tanh", name="bridge")
        decoder_embedding = keras.layers.Embedding(
            target_vocabulary_size, embedding_dim, embeddings_initializer=initializer, mask_zero=True,
            name="decoder_embedding")
        decoder_rnn = keras.layers.GRU(units, return_sequences=True, return_state=True, name="decoder_rnn")
        if attention == "bahdanau":
            attention_layer = BahdanauAttention(units, name="attention")
        else:
            attention_layer = LuongAttention(score="general", name="attention")
        attentional = keras.layers.Dense(embedding_dim, activation="tanh", name="attentional")
        dropout_layer = keras.layers.Dropout(dropout, name="dropout")
        head = LanguageModelHead(target_vocabulary_size, embedding=decoder_embedding, name="output_head")

        # === Functional Model ===
        encoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="encoder_token_ids")
        decoder_token_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_token_ids")
        encoder_padding_mask = ops.not_equal(encoder_token_ids, tokenization.PAD_ID)  # [B, S]
        x = dropout_layer(encoder_embedding(encoder_token_ids))
        encoder_outputs, forward_state, backward_state = encoder_rnn(x)  # [B, S, units], [B, units/2] x2
        state = bridge(ops.concatenate([forward_state, backward_state], axis=-1))  # [B, units]
        y = dropout_layer(decoder_embedding(decoder_token_ids))
        decoder_outputs, _ = decoder_rnn(y, initial_state=state)  # [B, T, units]
        context = attention_layer(decoder_outputs, encoder_outputs, key_padding_mask=encoder_padding_mask)
        vector = attentional(ops.concatenate([context, decoder_outputs], axis=-1))  # [B, T, E]
        logits = head(dropout_layer(vector))  # [B, T, V]
        super().__init__(
            inputs={"encoder_token_ids": encoder_token_ids, "decoder_token_ids": decoder_token_ids},
            outputs=logits,
            **kwargs,
        )

        # === Config ===
        self.source_vocabulary_size = source_vocabulary_size
        self.target_vocabulary_size = target_vocabulary_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.units = units
        self.attention = attention
        self.dropout = dropout
        self.encoder_embedding = encoder_embedding
        self.encoder_rnn = encoder_rnn
        self.bridge = bridge
        self.decoder_embedding = decoder_embedding
        self.decoder_rnn = decoder_rnn
        self.attention_layer = attention_layer
        self.attentional = attentional
        self.head = head

    def encode(self, encoder_token_ids):
        encoder_padding_mask = ops.not_equal(encoder_token_ids, tokenization.PAD_ID)
        encoder_outputs, forward_state, backward_state = self.encoder_rnn(
            self.encoder_embedding(encoder_token_ids))
        state = self.bridge(ops.concatenate([forward_state, backward_state], axis=-1))
        return encoder_outputs, encoder_padding_mask, state

    def start_cache(self, encoder_token_ids, prompt):
        """The cache: encoder outputs and mask, and the decoder state `(B, units)` (`prompt` unused)."""
        encoder_outputs, encoder_padding_mask, state = self.encode(encoder_token_ids)
        return {
            "encoder_outputs": encoder_outputs,
            "encoder_padding_mask": encoder_padding_mask,
            "state": state,
        }

    def next(self, token_ids, cache, index):
        """One cached decoding step: logits `(B, V)` of the token at `index`."""
        y = self.decoder_embedding(_previous_token(token_ids, index))  # [B, 1, E]
        output, state = self.decoder_rnn(y, initial_state=cache["state"])  # [B, 1, units], [B, units]
        output = output[:, 0]
        context = self.attention_layer(
            output, cache["encoder_outputs"], key_padding_mask=cache["encoder_padding_mask"])  # [B, units]
        vector = self.attentional(ops.concatenate([context, output], axis=-1))  # [B, E]
        cache = dict(cache)
        cache["state"] = state
        return self.head(vector), vector, cache

    def decode(self, cache, decoder_token_ids, return_attention_scores=False):
        """The decoder over whole target prefixes `(B, T)` from the cache's starting state.

        Returns the attentional vectors `(B, T, E)` (the head's input) and,
        with `return_attention_scores=True`, the attention weights `(B, T, S)`.
        """
        decoder_outputs, _ = self.decoder_rnn(self.decoder_embedding(decoder_token_ids),
                                              initial_state=cache["state"])  # [B, T, units]
        context = self.attention_layer(decoder_outputs, cache["encoder_outputs"],
                                       key_padding_mask=cache["encoder_padding_mask"],
                                       return_attention_scores=return_attention_scores)
        if return_attention_scores:
            context, scores = context
        vector = self.attentional(ops.concatenate([context, decoder_outputs], axis=-1))  # [B, T, E]
        if return_attention_scores:
            return vector, scores
        return vector

    def get_config(self):
        return {
            "source_vocabulary_size": self.source_vocabulary_size,
            "target_vocabulary_size": self.target_vocabulary_size,
            "sequence_length": self.sequence_length,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "attention": self.attention,
            "dropout": self.dropout,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_attention")
class LabelSmoothedCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits against labels smoothed by `label_smoothing`.

    `(1 - e) * -log p(label) + e * mean over the vocabulary of -log p(v)`
    (Szegedy et al., 2016), computed from the log-softmax without one-hot
    labels; padded positions are removed through the sample weights.

    Args:
        label_smoothing: float in [0, 1). Defaults to `0.1`.
    """

    def __init__(self, label_smoothing=0.1, name="label_smoothed_cross_entropy",
                 reduction="mean_with_sample_weight", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        _check_rate("label_smoothing", label_smoothing)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)  # [B, T, V]
        labels = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        negative_log_likelihood = -ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), -1)
        smooth = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * negative_log_likelihood + self.label_smoothing * smooth

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "name": self.name, "reduction": self.reduction,
                "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_attention")
class Translator(keras.Model):
    """Raw sentences in, translations out: a sequence-to-sequence network and its tokenizers.

    `translate(["A man rides a bike."])` tokenizes, decodes greedily or by
    beam search with the network's caches, and detokenizes. Sentences longer
    than the network's `sequence_length` are translated in pieces, cut at word
    boundaries (with a warning). Calling the model runs the network on token
    ids (teacher forcing), for training and evaluation of the loss.

    Args:
        seq2seq: `TransformerSeq2Seq` or `RNNAttentionSeq2Seq`.
        source_tokenizer: `keras_hub.tokenizers.SentencePieceTokenizer` of the source.
        target_tokenizer: the target's (a second instance when shared).
    """

    def __init__(self, seq2seq, source_tokenizer, target_tokenizer, **kwargs):
        super().__init__(**kwargs)
        self.seq2seq = seq2seq
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self._generators = _FunctionCache()
        self.built = True

    def call(self, inputs, training=False):
        return self.seq2seq(inputs, training=training)

    @property
    def sequence_length(self):
        return self.seq2seq.sequence_length

    def search(self, search="greedy", beam_width=4, length_penalty=0.6):
        """The `keras_attention.generation` search of these settings."""
        if search == "greedy":
            return GreedySearch(end_token_id=tokenization.END_ID, pad_token_id=tokenization.PAD_ID)
        if search == "beam":
            return BeamSearch(beam_width=beam_width, length_penalty=length_penalty,
                              end_token_id=tokenization.END_ID, pad_token_id=tokenization.PAD_ID)
        raise ValueError(f"Unknown search: {search!r}. Expected one of {SEARCHES}.")

    def decoding_step(self, cached=True, limit=None):
        """`next` for the searches: never padding or start, and no end as the first token.

        An empty translation of a non-empty sentence is never right, but
        under a weak model its one-token probability can beat every longer
        hypothesis, and beam search finds it (Stahlberg and Byrne, 2019).
        With `limit`, each sentence ends at its own `output_caps` position:
        its translation does not depend on the lengths of the others in the
        batch.
        """
        step = self.seq2seq.next if cached else self.seq2seq.next_uncached
        vocabulary_size = self.seq2seq.target_vocabulary_size
        forbidden = np.zeros((vocabulary_size,), "float32")
        forbidden[[tokenization.PAD_ID, tokenization.START_ID]] = -1e9
        no_end = np.zeros((vocabulary_size,), "float32")
        no_end[tokenization.END_ID] = -1e9
        end_only = np.full((vocabulary_size,), -1e9, "float32")
        end_only[tokenization.END_ID] = 0.0

        def next(token_ids, cache, index):
            logits, hidden_states, cache = step(token_ids, cache, index)
            logits = ops.cast(logits, "float32") + forbidden
            logits = ops.where(index <= 1, logits + no_end, logits)
            if limit is not None:
                caps = output_caps(cache["encoder_padding_mask"], limit)  # [B]
                logits = ops.where(ops.expand_dims(index >= caps, -1), end_only, logits)
            return logits, hidden_states, cache

        return next

    def generate(self, encoder_token_ids, search="greedy", beam_width=4, length_penalty=0.6, cached=True,
                 max_length=None):
        """Target ids `(B, L)` for source ids `(B, S)`: start, tokens, end, padding.

        By default a sentence of `s` tokens ends by position
        `min(sequence_length - 1, 2 * s + 10)` (`output_caps`), whatever the
        batch, and `L` is one more than the largest of those: the decoder
        caches hold `L` positions and every step costs in proportion to them.
        `max_length` instead fixes `L` for every sentence (for timing).
        """
        key = (search, beam_width, float(length_penalty), cached, max_length)
        if key not in self._generators.functions:
            searcher = self.search(search, beam_width, length_penalty)
            limit = self.sequence_length if max_length is None else min(max_length, self.sequence_length)
            next = self.decoding_step(cached, limit=None if max_length else limit)

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], reduce_retracing=True)
            def generate(encoder_token_ids):
                batch_size = tf.shape(encoder_token_ids)[0]
                caps = output_caps(encoder_token_ids != tokenization.PAD_ID, limit)
                length = limit if max_length else tf.reduce_max(caps) + 1
                prompt = tf.concat([tf.fill([batch_size, 1], tokenization.START_ID),
                                    tf.zeros([batch_size, length - 1], tf.int32)], axis=1)  # [B, L]
                cache = self.seq2seq.start_cache(encoder_token_ids, prompt)
                return searcher(next, prompt, cache=cache, index=1)

            self._generators.functions[key] = generate
        encoder_token_ids = tf.convert_to_tensor(encoder_token_ids, tf.int32)
        if encoder_token_ids.shape[1] is not None and encoder_token_ids.shape[1] > self.sequence_length:
            raise ValueError(
                f"The sources are {encoder_token_ids.shape[1]} tokens long; the model takes at most "
                f"{self.sequence_length}. Cut them, or use `translate`, which translates long "
                "sentences in pieces."
            )
        return self._generators.functions[key](encoder_token_ids)

    def serving_function(self, search="greedy", beam_width=4, length_penalty=0.6):
        """A TensorFlow function from sentences `(B,)` to translations `(B,)`, for export.

        Runs in a graph, so a source longer than `sequence_length` is cut
        there (`translate` translates it in pieces instead); an empty
        sentence gives an empty translation.
        """

        def serve(sentences):
            ragged = tokenization.tokenize(self.source_tokenizer, sentences)[:, : self.sequence_length]
            ids = ragged.to_tensor()
            ids = tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])  # At least one column.
            translations = tokenization.detokenize(
                self.target_tokenizer, self.generate(ids, search, beam_width, length_penalty))
            return tf.where(ragged.row_lengths() > 0, translations, tf.constant(""))

        return serve

    def source_chunks(self, sentences):
        """Token ids of each sentence, cut at word starts into chunks of at most `sequence_length`.

        Returns a list (one per sentence) of lists of id lists; an empty
        sentence has no chunk.
        """
        ragged = tokenization.tokenize(self.source_tokenizer, list(sentences))
        vocabulary = self.source_tokenizer.get_vocabulary()
        chunks, long_sentences = [], 0
        for ids in ragged.to_list():
            if len(ids) <= self.sequence_length:
                chunks.append([ids] if ids else [])
            else:
                long_sentences += 1
                chunks.append(split_at_words(ids, vocabulary, self.sequence_length))
        if long_sentences:
            warnings.warn(
                f"{long_sentences} sentence(s) longer than the model's {self.sequence_length} source tokens were "
                "translated in pieces cut between words.",
                stacklevel=3,
            )
        return chunks

    def translate(self, sentences, search="greedy", beam_width=4, length_penalty=0.6, batch_size=64):
        """Translate a list of sentences (str); returns a list of str, one per sentence.

        Args:
            sentences: list of str (or one str). Empty sentences give "".
            search: `"greedy"` or `"beam"`.
            beam_width: int. Beams of the beam search.
            length_penalty: float. `alpha` of the beam search's length penalty.
            batch_size: int. Sentences (or pieces) decoded together.
        """
        single = isinstance(sentences, str)
        sentences = [sentences] if single else list(sentences)
        chunks = self.source_chunks(sentences)
        flat = [(i, ids) for i, sentence_chunks in enumerate(chunks) for ids in sentence_chunks]
        # Decode similar lengths together: less padding.
        order = sorted(range(len(flat)), key=lambda k: len(flat[k][1]))
        outputs = [""] * len(flat)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(flat[k][1]) for k in batch)
            ids = np.zeros((len(batch), width), "int32")
            for row, k in enumerate(batch):
                ids[row, : len(flat[k][1])] = flat[k][1]
            generated = self.generate(ids, search, beam_width, length_penalty)
            texts = tokenization.to_text(tokenization.detokenize(self.target_tokenizer, generated))
            for k, text in zip(batch, texts):
                outputs[k] = text
        translations = [[] for _ in sentences]
        for (i, _), text in zip(flat, outputs):
            translations[i].append(text)
        results = [" ".join(t for t in parts if t) for parts in translations]
        return results[0] if single else results

    def alignment(self, sentence, translation=None, search="greedy"):
        """Cross-attention of a translated sentence.

        Returns `(source_pieces, target_pieces, scores)` with `scores` a
        `(len(target_pieces), len(source_pieces))` NumPy array: the target
        pieces (and the end token) against the source pieces.
        """
        source_ids = self.source_chunks([sentence])[0]
        source_ids = source_ids[0] if source_ids else []
        if not source_ids:
            raise ValueError("Cannot show the alignment of an empty sentence.")
        if translation is None:
            target_ids = np.asarray(self.generate(np.array([source_ids], "int32"), search))[0].tolist()
        else:
            target_ids = [tokenization.START_ID] + tokenization.tokenize(
                self.target_tokenizer, [translation]).to_list()[0][: self.sequence_length - 2]
            target_ids.append(tokenization.END_ID)
        if tokenization.END_ID in target_ids:
            target_ids = target_ids[: target_ids.index(tokenization.END_ID) + 1]
        decoder_ids = target_ids[:-1] if target_ids[-1] == tokenization.END_ID else target_ids
        scores = self.seq2seq.cross_attention_scores(
            np.array([source_ids], "int32"), np.array([decoder_ids], "int32"))
        scores = ops.convert_to_numpy(scores)[0]  # [T, S]
        source_pieces = tokenization.pieces(self.source_tokenizer, source_ids)
        target_pieces = tokenization.pieces(self.target_tokenizer, target_ids[1:])
        return source_pieces, target_pieces, scores[: len(target_pieces)]

    def get_config(self):
        return {
            "seq2seq": keras.saving.serialize_keras_object(self.seq2seq),
            "source_tokenizer": keras.saving.serialize_keras_object(self.source_tokenizer),
            "target_tokenizer": keras.saving.serialize_keras_object(self.target_tokenizer),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("seq2seq", "source_tokenizer", "target_tokenizer"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


class _FunctionCache:
    """The traced decoding functions of a `Translator`, kept out of Keras and TensorFlow tracking."""

    def __init__(self):
        self.functions = {}


def output_caps(source_mask, limit):
    """The position `(B,)` by which each sentence's translation ends.

    `2 * s + 10` for a source of `s` tokens (`source_mask`, `(B, S)`, true on
    real tokens), and at most `limit - 1`, so that the end token fits in
    `limit` positions. A sentence's own length, not the batch's padded width:
    its translation is the same alone or batched.
    """
    lengths = ops.sum(ops.cast(source_mask, "int32"), axis=1)  # [B]
    return ops.minimum(limit - 1, 2 * lengths + 10)


def split_at_words(token_ids, vocabulary, limit):
    """Cut token ids into chunks of at most `limit`, between words.

    A chunk ends after the last word that closes a clause (`.`, `,`, `;`,
    `:`, `!`, `?`) in its second half when there is one, else after its last
    whole word; a single word longer than `limit` is cut inside.
    """
    words = []
    for token_id in token_ids:
        if words and not tokenization.starts_word(vocabulary[token_id]):
            words[-1].append(token_id)
        else:
            words.append([token_id])
    chunks, current = [], []  # `current`: the words of the chunk being filled.
    for word in words:
        while len(word) > limit:  # A word longer than the model takes: cut inside it.
            if current:
                chunks.append(current)
                current = []
            chunks.append([word[:limit]])
            word = word[limit:]
        if sum(map(len, current)) + len(word) > limit:
            cut = len(current)
            filled = np.cumsum([len(w) for w in current])  # Tokens up to and including word k.
            for k in range(len(current) - 1, -1, -1):
                if filled[k] < limit / 2:
                    break
                if vocabulary[current[k][-1]][-1:] in ".,;:!?":
                    cut = k + 1
                    break
            chunks.append(current[:cut])
            current = current[cut:]
            if sum(map(len, current)) + len(word) > limit:
                chunks.append(current)
                current = []
        current.append(word)
    if current:
        chunks.append(current)
    return [[t for w in chunk for t in w] for chunk in chunks if chunk]


def build_seq2seq(architecture, source_vocabulary_size, target_vocabulary_size, sequence_length, **settings):
    """The network of `architecture` (`"transformer"` or `"rnn-attention"`) with `settings`."""
    if architecture == "transformer":
        return TransformerSeq2Seq(source_vocabulary_size, target_vocabulary_size, sequence_length,
                                  name="transformer", **settings)
    if architecture == "rnn-attention":
        return RNNAttentionSeq2Seq(source_vocabulary_size, target_vocabulary_size, sequence_length,
                                   name="rnn_attention", **settings)
    raise ValueError(f"Unknown architecture: {architecture!r}. Expected one of {ARCHITECTURES}.")
