"""Pretraining of the text-classification encoder on unlabeled text.

`keras-attention pretrain text --corpus FILE... --output RUN` (`pretrain_command.py`) runs
`pretrain`: it learns a WordPiece vocabulary from the corpus (the classifier's tokenizer kind,
plus a `[MASK]` token), builds the classifier's encoder (`model.encoder_layers`: token and
position embedding, Transformer encoder blocks, final norm; 128 wide and two blocks deep by
default, twice the classifier's sizes) and trains it on one of two objectives (`--objective`):

- `masked-lm` (the default): recover masked tokens (BERT's recipe: 15% of the pieces chosen,
  80% of those replaced by `[MASK]`, 10% by a random piece, 10% kept; keras_hub's
  `MaskedLMMaskGenerator`). The output layer is `keras_attention.heads.LanguageModelHead` tied
  to the token embedding, applied at the masked positions only (a few per sentence, not all
  `sequence_length`, so the `(B, P, V)` logits stay small).
- `same-document`: tell which sentences come from the same document (a contrastive objective
  after DeCLUTR, Giorgi et al. 2021). Each step draws two sentences of each of `batch_size`
  documents; the mean-pooled encoder outputs, projected and unit-normalized, score every
  anchor against every positive of the batch, and the loss is the cross-entropy of picking
  the right one, both ways (InfoNCE, as CLIP trains). Documents are separated by a blank line
  in the corpus files (BERT's pretraining text format). Sentences of one film review share its
  film and, above all, its opinion, so on reviews this teaches sentiment without a label.

The run folder holds `model.keras`, the text encoder (strings `(B,)` to hidden states
`(B, T, D)`, the tokenizer inside; its layers are named `tokenizer` and `encoder`), the
vocabulary, history, learning curves, `settings.json` (with `"task": "text-pretraining"` and
the objective) and `metrics.json` (the objective's accuracy and loss on held-out sentences or
documents, before and after). `keras-attention finetune text-classification --from RUN` starts
a classifier from it (`recipe.finetune`): the tokenizer, embedding and encoder blocks are
copied into every member, the head is new.

Result of these defaults (`benchmarks/finetuning_benchmark.py`, `benchmarks/results/finetuning.md`;
a 2-core x86 CPU): on the English sentences of the shared data (Multi30k's captions, Tatoeba's
spa-eng English side, the SST-2 training sentences: 137,041), masked-token accuracy 41.4% after
5 epochs (16.2 min). Single-model SST-2 classifiers fine-tuned from it reached 78.62% dev
accuracy (mean of seeds 0-9) against 78.02% from scratch: about even. LoRA of rank 8 on the
query and value projections and the token table reached 77.27%, training 6% of the weights.
15 epochs (47 min, masked-token accuracy 47.8%) did no better on the validation slice.
Film reviews do better than that corpus: on the sentences of IMDB's 25,000 training reviews
(`finetuning_benchmark.py --corpus imdb`) fine-tuning reached 79.05% (+1.03 over scratch) after
5 epochs and 79.13% after 10, while LoRA fell to 77.01% and 76.66%. That encoder continued
25 epochs with the same-document objective on the same reviews (17.5 min) reached 81.38%
(+3.36 over scratch), and LoRA at a peak rate of 2e-3 80.79% (-0.58 against full fine-tuning;
`benchmarks/results/finetuning_imdb_same_document.md`).
"""

import gzip
import time
from pathlib import Path

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from applications.common.errors import UserError
from applications.common.run_folder import METRICS_FILE
from applications.common.run_folder import MODEL_FILE
from applications.common.run_folder import SETTINGS_FILE
from applications.common.run_folder import RunFolder
from applications.common.run_folder import write_json
from applications.common.serving import load_model
from applications.common.serving import load_settings
from applications.common.training import fit
from applications.common.training import set_seed
from applications.common.training import warmup_cosine
from applications.text_classification import model as model_lib
from applications.text_classification import recipe
from keras_attention.heads import LanguageModelHead

TASK = "text-pretraining"  # `settings.json`'s "task": how `finetune` tells a pretraining run
OBJECTIVES = ("masked-lm", "same-document")
# What `metrics.json` calls each objective's held-out accuracy and loss (`*_accuracy`, `*_loss`).
METRIC_NAMES = {"masked-lm": "masked_token", "same-document": "same_document"}
# Epochs by default: passes over the sentences (masked-lm), or over the documents, one pair of
# sentences of each a pass (same-document). Same-document from the IMDB masked-lm encoder, SST-2
# validation slice, seeds 0-2, full fine-tuning: 78.47% without it, 80.25% after 10 epochs,
# 81.70% after 25 (training pairs picked right: 11% after 10 epochs, 16% after 25).
DEFAULT_EPOCHS = {"masked-lm": 5, "same-document": 25}
# The settings a classifier started from the encoder takes from the pretraining run.
ENCODER_SETTINGS = ("vocabulary_size", "sequence_length", "lowercase", "hidden_dim", "num_layers",
                    "num_heads", "intermediate_dim")

# === Settings ===
SETTINGS = {
    # Tokenizer: the classifier's (recipe.SETTINGS). A classifier started from here takes the
    # encoder's sizes (ENCODER_SETTINGS) from the run.
    **{key: recipe.SETTINGS[key] for key in ENCODER_SETTINGS},
    "min_word_count": recipe.SETTINGS["min_word_count"],
    # Encoder: twice the classifier's width and depth. A corpus of 137,041 sentences fills it
    # (masked-token accuracy 41% against 36% at the classifier's 64 wide, one block), and
    # LoRA of rank 8 on its query, value and 8000 x 128 token table trains 6% of the weights
    # (11% at 64 wide, over the 10% of issue 7's target). 256 wide did no better (IMDB's
    # reviews, 4 epochs: full fine-tuning 78.83% on the validation slice against 79.12%).
    "hidden_dim": 128,
    "num_layers": 2,
    "intermediate_dim": 256,
    "dropout": 0.1,  # attention and feed-forward dropout (less than the classifier's 0.3)
    "embedding_dropout": 0.1,
    "objective": "masked-lm",  # one of OBJECTIVES
    # Masking (BERT).
    "mask_rate": 0.15,  # fraction of the pieces of a sentence chosen for prediction
    "masks_per_sentence": 8,  # at most this many chosen per sentence (SST-2 and Multi30k: ~13-20 pieces)
    # Same document: cosine similarities over this temperature are the logits (DeCLUTR's and
    # SimCSE's 0.05).
    "temperature": 0.05,
    # Training.
    "learning_rate": 1e-3,  # peak of the warmup-cosine schedule
    "warmup_fraction": 0.05,
    "weight_decay": 0.01,  # AdamW
    "batch_size": 64,
    "epochs": None,  # DEFAULT_EPOCHS of the objective
    "validation_fraction": 0.02,  # of the sentences (documents), held out for the metrics
}
VOCABULARY_FILE = recipe.VOCABULARY_FILE


# === Data ===


def read_corpus(paths):
    """The documents of plain or gzip UTF-8 text files, each a list of its sentences.

    One sentence a line; a blank line ends a document (BERT's pretraining text), and so does
    the end of a file. Raises `UserError` for a bad file.
    """
    if not paths:
        raise UserError("No corpus given: pass --corpus FILE [FILE ...], one sentence a line.")
    documents = []
    for path in map(Path, paths):
        if not path.is_file():
            raise UserError(f"--corpus {path}: no such file.")
        try:
            with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except UnicodeDecodeError as error:
            raise UserError(f"--corpus {path}: not UTF-8 text ({error.reason}).") from None
        except (OSError, EOFError) as error:  # A truncated or non-gzip .gz file.
            raise UserError(f"--corpus {path}: cannot read it ({error}).") from None
        if not any(lines):
            raise UserError(f"--corpus {path}: the file holds no sentences (expected one a line).")
        document = []
        for line in [*lines, ""]:
            if line:
                document.append(line)
            elif document:
                documents.append(document)
                document = []
    return documents


def split_held_out(items, fraction, seed, minimum=1):
    """A seeded shuffle, then (fit, held out); at least `minimum` held out and one item to fit."""
    order = np.random.default_rng(seed).permutation(len(items))
    held = min(max(int(round(fraction * len(items))), minimum), len(items) - 1)
    return [items[i] for i in order[held:]], [items[i] for i in order[:held]]


def mask_generator(vocabulary, settings):
    """keras_hub's `MaskedLMMaskGenerator` over the pieces (never padding or `[MASK]`)."""
    mask_id = vocabulary.index(model_lib.MASK_TOKEN)
    return keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=len(vocabulary),
        mask_selection_rate=settings["mask_rate"],
        mask_token_id=mask_id,
        mask_selection_length=settings["masks_per_sentence"],
        unselectable_token_ids=[0, mask_id],
    )


def masked(generator, token_ids):
    """`(inputs, mask_ids, mask_weights)`: the model's inputs, targets and their weights."""
    out = generator(token_ids)
    ids = tf.cast(out["token_ids"], "int32")
    # keras_hub draws its random replacements from the whole vocabulary: a [PAD] (0) among
    # them would hide a real position as padding. Such a draw becomes a piece instead.
    first_piece = generator.mask_token_id + 1  # [PAD], [UNK], [MASK] come first.
    pieces = tf.random.uniform(tf.shape(ids), first_piece, generator.vocabulary_size, dtype="int32")
    ids = tf.where((ids == 0) & (tf.cast(token_ids, "int32") != 0), pieces, ids)
    inputs = {
        "token_ids": ids,
        "mask_positions": tf.cast(out["mask_positions"], "int32"),
    }
    return inputs, tf.cast(out["mask_ids"], "int32"), tf.cast(out["mask_weights"], "float32")


def training_dataset(token_ids, generator, batch_size, seed):
    """Seeded shuffle, batches, new masks every epoch."""
    dataset = tf.data.Dataset.from_tensor_slices(token_ids)
    dataset = dataset.shuffle(len(token_ids), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(lambda ids: masked(generator, ids)).prefetch(tf.data.AUTOTUNE)


def validation_dataset(token_ids, generator, batch_size=256):
    """The held-out sentences masked once (the same masks at every evaluation)."""
    inputs, mask_ids, weights = masked(generator, tf.constant(token_ids))
    return tf.data.Dataset.from_tensor_slices((inputs, mask_ids, weights)).batch(batch_size)


def document_rows(tokenizer, documents):
    """Token ids of every sentence `(N, T)`, and each document's first row and sentence count."""
    token_ids = recipe.encode(tokenizer, [sentence for document in documents for sentence in document])
    counts = np.array([len(document) for document in documents], "int32")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype("int32")
    return token_ids, starts, counts


def pair_labels(pairs, batch_size):
    """Full batches of pairs, each labelled with the positions of the positives: `0..B-1`."""
    labels = tf.range(batch_size, dtype="int32")
    return pairs.batch(batch_size, drop_remainder=True).map(lambda x: (x, labels))


def document_pairs_dataset(token_ids, starts, counts, batch_size, seed):
    """Seeded shuffle of the documents, two different sentences of each drawn anew every epoch."""
    token_ids = tf.constant(token_ids)

    def pick(start, count):
        first = tf.random.uniform((), 0, count, dtype="int32")
        second = tf.random.uniform((), 0, count - 1, dtype="int32")
        second += tf.cast(second >= first, "int32")  # Any sentence but the first.
        return {"anchor": token_ids[start + first], "positive": token_ids[start + second]}

    documents = tf.data.Dataset.from_tensor_slices((starts, counts))
    documents = documents.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
    return pair_labels(documents.map(pick), batch_size).prefetch(tf.data.AUTOTUNE)


def held_out_pairs_dataset(token_ids, starts, counts, batch_size, seed):
    """One seeded pair of each held-out document, the same at every evaluation."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, counts)
    second = rng.integers(0, counts - 1)
    second += second >= first
    pairs = {"anchor": token_ids[starts + first], "positive": token_ids[starts + second]}
    # In-batch accuracy depends on the batch: every batch of this slice is full.
    return pair_labels(tf.data.Dataset.from_tensor_slices(pairs), min(batch_size, len(starts)))


# === Model ===


def build_encoder(vocabulary_size, settings):
    """The classifier's encoder (`model.encoder_layers`): token ids `(B, T)` to hidden states `(B, T, D)`."""
    layers = model_lib.encoder_layers(
        vocabulary_size, settings["sequence_length"], settings["hidden_dim"],
        settings["num_layers"], settings["num_heads"], settings["intermediate_dim"],
        settings["dropout"], settings["embedding_dropout"],
    )
    token_ids = keras.Input((settings["sequence_length"],), dtype="int32", name="token_ids")
    hidden_states, _ = model_lib.apply_encoder(layers, token_ids)  # [B, T, D]
    return keras.Model(token_ids, hidden_states, name="encoder")


def build_masked_lm(vocabulary_size, settings):
    """The encoder, and the masked LM around it.

    Returns:
        `(encoder, masked_lm)`: `encoder` maps token ids `(B, T)` to hidden states
        `(B, T, D)`; `masked_lm` maps `token_ids` and `mask_positions` `(B, P)` to the logits
        `(B, P, V)` of the pieces at those positions, through a dense + norm transform and a
        `LanguageModelHead` tied to the token embedding.
    """
    # === Layers ===
    encoder = build_encoder(vocabulary_size, settings)
    transform = keras.layers.Dense(settings["hidden_dim"], activation="gelu", name="mlm_dense")
    transform_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="mlm_norm")
    head = LanguageModelHead(vocabulary_size, embedding=encoder.get_layer("embedding"), name="mlm_head")

    # === Functional Model ===
    token_ids = keras.Input((settings["sequence_length"],), dtype="int32", name="token_ids")
    mask_positions = keras.Input((settings["masks_per_sentence"],), dtype="int32", name="mask_positions")
    x = encoder(token_ids)  # [B, T, D]
    x = ops.take_along_axis(x, ops.expand_dims(mask_positions, -1), axis=1)  # [B, P, D]
    logits = head(transform_norm(transform(x)))  # [B, P, V]
    masked_lm = keras.Model({"token_ids": token_ids, "mask_positions": mask_positions}, logits,
                            name="masked_lm")
    return encoder, masked_lm


def build_same_document(vocabulary_size, settings):
    """The encoder, and the same-document scorer around it.

    Returns:
        `(encoder, scorer)`: `scorer` maps `anchor` and `positive` token ids `(B, T)` to the
        logits `(B, B)`: the cosine similarity of anchor `i` and positive `j`, over the
        temperature. Each sentence is the mean of its hidden states over its tokens, through a
        dense projection.
    """
    # === Layers ===
    encoder = build_encoder(vocabulary_size, settings)
    pooling = keras.layers.GlobalAveragePooling1D(name="mean_pooling")
    projection = keras.layers.Dense(settings["hidden_dim"], name="projection")
    unit_norm = keras.layers.UnitNormalization(name="unit_norm")

    # === Functional Model ===
    def embed(token_ids):  # [B, T] -> [B, D]
        return unit_norm(projection(pooling(encoder(token_ids), mask=ops.not_equal(token_ids, 0))))

    anchor = keras.Input((settings["sequence_length"],), dtype="int32", name="anchor")
    positive = keras.Input((settings["sequence_length"],), dtype="int32", name="positive")
    similarity = ops.matmul(embed(anchor), ops.transpose(embed(positive)))  # [B, B]
    # Softmax and loss in float32 whatever the policy.
    logits = ops.cast(similarity, "float32") / settings["temperature"]
    return encoder, keras.Model({"anchor": anchor, "positive": positive}, logits, name="same_document")


def symmetric_contrastive_loss(labels, logits):
    """InfoNCE both ways, as CLIP trains: each anchor picks its positive, each positive its anchor.

    Args:
        labels: `(B,)` the index of each anchor's positive (`0..B-1`).
        logits: `(B, B)` anchor-by-positive scores.
    """
    anchors = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    positives = keras.losses.sparse_categorical_crossentropy(labels, ops.transpose(logits), from_logits=True)
    return (anchors + positives) / 2


def text_encoder(tokenizer, encoder):
    """Strings `(B,)` to hidden states `(B, T, D)`: the model the run folder saves."""
    text = keras.Input((), dtype="string", name="text")
    return keras.Model(text, encoder(tokenizer(text)), name="text_encoder")


# === Training ===


def pretrain(corpus, output, epochs=None, batch_size=None, seed=0, resume=False, overwrite=False,
             quiet=False, settings=None, max_sentences=None, from_run=None):
    """Pretrain the encoder on the `corpus` files; write the run folder `output`.

    `settings["objective"]` picks what it learns (the module docstring): `"masked-lm"` on
    every sentence, or `"same-document"` on the documents of two sentences or more.

    With `from_run` (a pretraining run folder), continue that run's encoder on `corpus`: its
    vocabulary, sizes and weights are kept and the objective's layers are new. This is
    domain- or task-adaptive pretraining (Gururangan et al. 2020): a second, short run on the
    unlabeled texts of the task after a run on a larger general corpus; or a second objective
    after the first.

    Returns:
        The metrics written to `metrics.json`.
    """
    overrides = dict(settings or {})
    settings = {**SETTINGS, **overrides}
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise UserError(f"Unknown settings: {', '.join(unknown)}. Expected some of {', '.join(SETTINGS)}.")
    objective = settings["objective"]
    if objective not in OBJECTIVES:
        raise UserError(f"Unknown --objective {objective!r}. Expected one of {', '.join(OBJECTIVES)}.")
    if max_sentences and objective == "same-document":
        raise UserError("--max-sentences samples sentences for --objective masked-lm; the same-document "
                        "objective reads whole documents: leave the flag out.")
    base = None
    if from_run is not None:
        base_settings = load_settings(from_run)
        if base_settings.get("task") != TASK:
            raise UserError(f"--from {from_run}: not a pretraining run; give a run folder written by "
                            f"`keras-attention pretrain text`.")
        fixed = [key for key in ENCODER_SETTINGS if key in overrides and overrides[key] != base_settings[key]]
        if fixed:
            raise UserError(f"--{fixed[0].replace('_', '-')}: the encoder of --from {from_run} keeps its "
                            f"vocabulary and sizes; leave the flag out.")
        settings.update({key: base_settings[key] for key in ENCODER_SETTINGS})
        base = load_model(from_run)
    epochs = epochs or settings["epochs"] or DEFAULT_EPOCHS[objective]
    batch_size = batch_size or settings["batch_size"]
    set_seed(seed)
    documents = read_corpus(corpus)
    if objective == "masked-lm":
        items = [sentence for document in documents for sentence in document]
        if max_sentences and max_sentences < len(items):
            items = [items[i] for i in sorted(
                np.random.default_rng(seed).choice(len(items), max_sentences, replace=False))]
        if len(items) < 2:
            raise UserError(f"The corpus holds {len(items)} sentence; pretraining needs at least 2.")
    else:
        items = [document for document in documents if len(document) >= 2]
        if len(items) < 2:
            raise UserError(
                f"The corpus holds {len(items)} document(s) of two sentences or more; --objective "
                f"same-document needs at least 2 (one sentence a line, a blank line between documents)."
            )
    # Picking a document's other sentence among one is no test: hold out two documents at least.
    fit_part, held_out = split_held_out(items, settings["validation_fraction"], seed,
                                        minimum=1 if objective == "masked-lm" else 2)
    if objective == "same-document" and len(fit_part) < batch_size:
        raise UserError(f"--objective same-document: {len(fit_part)} documents to train on, fewer than a "
                        f"batch ({batch_size}); give more documents or a smaller --batch-size.")

    with RunFolder(output, resume=resume, overwrite=overwrite) as run:
        started = time.perf_counter()
        sentences = fit_part if objective == "masked-lm" else [s for document in fit_part for s in document]
        if base is None:
            vocabulary = model_lib.learn_vocabulary(
                sentences, settings["vocabulary_size"], min_word_count=settings["min_word_count"],
                lowercase=settings["lowercase"],
                reserved_tokens=[*model_lib.RESERVED_TOKENS, model_lib.MASK_TOKEN],
            )
        else:
            vocabulary = list(base.get_layer("tokenizer").get_vocabulary())
        tokenizer = model_lib.build_tokenizer(vocabulary, settings["sequence_length"],
                                              lowercase=settings["lowercase"])
        if objective == "masked-lm":
            generator = mask_generator(vocabulary, settings)
            train_ids = recipe.encode(tokenizer, fit_part)
            train_data = training_dataset(train_ids, generator, batch_size, seed)
            validation = validation_dataset(recipe.encode(tokenizer, held_out), generator)
            steps = int(np.ceil(len(train_ids) / batch_size)) * epochs
            encoder, model = build_masked_lm(len(vocabulary), settings)
            # The mean over the masked pieces only (the padding slots of `mask_positions` weigh 0).
            losses = dict(loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"),
                weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
        else:
            train_data = document_pairs_dataset(*document_rows(tokenizer, fit_part), batch_size, seed)
            validation = held_out_pairs_dataset(*document_rows(tokenizer, held_out), batch_size, seed)
            steps = len(fit_part) // batch_size * epochs
            encoder, model = build_same_document(len(vocabulary), settings)
            losses = dict(loss=symmetric_contrastive_loss,
                          metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
        if base is not None:
            model_lib.copy_encoder_weights(base.get_layer("encoder"), encoder)
        schedule = warmup_cosine(settings["learning_rate"], steps, int(settings["warmup_fraction"] * steps))
        model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=settings["weight_decay"]),
                      **losses)
        loss_before, accuracy_before = model.evaluate(validation, verbose=0)
        preparation_seconds = time.perf_counter() - started

        started = time.perf_counter()
        history = fit(model, train_data, run, epochs, validation_data=validation, quiet=quiet)
        training_seconds = time.perf_counter() - started
        loss, accuracy = model.evaluate(validation, verbose=0)
        name = METRIC_NAMES[objective]
        metrics = {
            "task": TASK,
            "objective": objective,
            f"{name}_accuracy": round(float(accuracy), 4),
            f"{name}_loss": round(float(loss), 4),
            f"{name}_accuracy_before": round(float(accuracy_before), 4),
            f"{name}_loss_before": round(float(loss_before), 4),
            "epochs_run": len(history),
            "training_seconds": round(training_seconds, 1),
            "preparation_seconds": round(preparation_seconds, 1),
            "train_sentences": len(sentences),
            "validation_sentences": sum(map(len, held_out)) if objective == "same-document" else len(held_out),
            **({"train_documents": len(fit_part), "validation_documents": len(held_out)}
               if objective == "same-document" else {}),
            "vocabulary_size": len(vocabulary),
            "encoder_parameters": int(encoder.count_params()),
        }
        write_json(run.file(SETTINGS_FILE), {
            "task": TASK, **settings, "vocabulary_size": len(vocabulary),
            "corpus": [str(path) for path in corpus], "max_sentences": max_sentences,
            "from": None if from_run is None else str(from_run),
            "epochs": epochs, "batch_size": batch_size, "seed": seed,
        })
        write_json(run.file(METRICS_FILE), metrics)
        run.file(VOCABULARY_FILE).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        text_encoder(tokenizer, encoder).save(run.file(MODEL_FILE))
    return metrics
