"""Training a translation model: settings, vocabularies, batches, training, results.

    keras-attention train translation                                   # Multi30k en->de, Transformer
    keras-attention train translation --architecture rnn-attention      # GRU + Bahdanau attention
    keras-attention train translation --data spa-eng --source en --target es

Results of the default recipes on Multi30k en->de, test_2016_flickr, sacreBLEU
(see `benchmarks/results/translation.md` for the latest measurements, the
machine and its load):
- Transformer (3+3 layers, width 256, shared 8k vocabulary, 22 epochs):
  36.87 BLEU greedy, 38.10 with beam search (width 4), trained in 88.6
  minutes on 2 CPU cores (target: 34 BLEU in at most 90 minutes); on
  another 2-core machine 36.85 and 37.94 in 101.1 minutes.
- RNN with Bahdanau attention (12 epochs): 35.72 BLEU greedy, 37.53 with
  beam search, trained in 35.6 minutes (target: 28 BLEU).
"""

import math
import time

import keras
import numpy as np

from applications.common import (
    METRICS_FILE,
    MODEL_FILE,
    SETTINGS_FILE,
    FineTuning,
    RunFolder,
    UserError,
    fit,
    load_model,
    load_settings,
    model_path,
    runtime_settings,
    set_seed,
    write_json,
)
from applications.translation import evaluation, tokenization
from applications.translation.data import drop_empty_pairs, load_parallel_text
from applications.translation.model import LabelSmoothedCrossEntropy, Translator, build_seq2seq

# === Settings ===
ARCHITECTURE = "transformer"  # Or "rnn-attention".
MODELS = {
    # About 9M weights with an 8k shared vocabulary (the embedding is tied three ways).
    "transformer": dict(hidden_dim=256, num_layers=3, num_heads=4, intermediate_dim=1024, dropout=0.1),
    # A bidirectional GRU encoder (2 x 256) and a GRU decoder (512) with additive attention.
    "rnn-attention": dict(embedding_dim=256, units=512, attention="bahdanau", dropout=0.2),
}
RECIPES = {
    "transformer": dict(
        epochs=22,  # 88.6 minutes measured on 2 Intel cores (about 1 s a batch), 101.1 on 2 AMD EPYC cores.
        learning_rate=1e-3,  # Peak of the warmup schedule (Adam, beta_2 = 0.98).
        warmup_steps=800,  # About 3.5 epochs of Multi30k (227 batches an epoch).
        decay="cosine",  # Down to 0 at the last step; "inverse_sqrt" for open-ended runs.
    ),
    "rnn-attention": dict(epochs=12, learning_rate=2e-3, warmup_steps=200, decay="cosine"),
}
VOCABULARY_SIZE = 8000  # SentencePiece pieces per vocabulary (small corpora learn fewer).
SHARED_VOCABULARY = True  # One vocabulary for both languages: ties every embedding (Transformer).
SEQUENCE_LENGTH = 64  # Longest source and target in pieces; longer training pairs are cut.
BATCH_SIZE = 128  # Sentence pairs per batch (about 4,000 pieces of Multi30k with padding).
LABEL_SMOOTHING = 0.1
CLIP_NORM = 1.0  # Gradient clipping by global norm.
SEARCH = dict(beam_width=4, length_penalty=0.6)  # For the final test scores.
# A sentence of the test set whose cross-attention is drawn at the end.
ALIGNMENT_SENTENCE = "A man in an orange hat starring at something."


def check_settings(architecture, model_settings, max_minutes=None):
    """Refuse, before any data is read, settings the network or the schedule cannot use.

    The networks would refuse them too, but only once the vocabulary is learned, and with a
    `ValueError` about constructor arguments rather than the flags.
    """
    for name in ("hidden_dim", "num_layers", "num_heads", "intermediate_dim", "embedding_dim", "units"):
        value = model_settings.get(name)
        if name in model_settings and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"--{name.replace('_', '-')} {value!r}: expected a positive whole number.")
    if architecture == "transformer" and model_settings["hidden_dim"] % model_settings["num_heads"]:
        hidden_dim, num_heads = model_settings["hidden_dim"], model_settings["num_heads"]
        raise UserError(
            f"--hidden-dim {hidden_dim} is not divisible by --num-heads {num_heads}: each attention head "
            f"takes an equal share of the width. Give a --hidden-dim that is a multiple of --num-heads "
            f"(such as {-(-hidden_dim // num_heads) * num_heads}), or a --num-heads that divides it."
        )
    if architecture == "rnn-attention" and model_settings["units"] % 2:
        raise UserError(
            f"--units {model_settings['units']} is odd: the bidirectional encoder gives each direction "
            "half of the decoder's units. Give an even --units."
        )
    if max_minutes is not None and not max_minutes > 0:
        raise UserError(f"--max-minutes {max_minutes!r}: expected a number of minutes > 0.")


# === Vocabularies and tokenizers ===
def build_tokenizers(corpus, vocabulary_size, shared):
    """Learn the SentencePiece vocabularies of a training corpus; returns the two tokenizers."""
    if shared:
        vocabulary = tokenization.learn_vocabulary(corpus.sources + corpus.targets, vocabulary_size)
        source_vocabulary = target_vocabulary = vocabulary
    else:
        source_vocabulary = tokenization.learn_vocabulary(corpus.sources, vocabulary_size)
        target_vocabulary = tokenization.learn_vocabulary(corpus.targets, vocabulary_size)
    return tokenization.make_tokenizer(source_vocabulary), tokenization.make_tokenizer(target_vocabulary)


# === Batches ===
def encode_pairs(translator, corpus):
    """Token ids of a corpus: sources cut to `sequence_length`, targets to `sequence_length - 1`.

    Returns `(sources, targets)`, two lists of int32 arrays; the target has
    room for the start token (decoder input) or the end token (labels).
    """
    length = translator.sequence_length
    sources = tokenization.tokenize(translator.source_tokenizer, corpus.sources).to_list()
    targets = tokenization.tokenize(translator.target_tokenizer, corpus.targets).to_list()
    cut = sum(len(s) > length or len(t) > length - 1 for s, t in zip(sources, targets))
    if cut:
        print(f"{cut} of {len(sources)} pairs of {corpus.description} are longer than {length} pieces "
              "and were cut.")
    return ([np.array(s[:length], "int32") for s in sources],
            [np.array(t[: length - 1], "int32") for t in targets])


class TranslationBatches:
    """Batches of `batch_size` pairs of similar lengths, the same number every epoch.

    Each epoch the pairs are shuffled with `seed + epoch`, sorted by length
    within pools of 50 batches, cut into batches and the batches shuffled:
    little padding, and the same order for the same seed and epoch (also
    after `--resume`). Widths are rounded up to multiples of 8, so few
    shapes are traced.

    `dataset()` yields `({"encoder_token_ids", "decoder_token_ids"}, labels,
    weights)`: the decoder reads `[START] target` and predicts `target [END]`;
    `weights` is 0 on padding. (A `tf.data` pipeline rather than a
    `keras.utils.PyDataset`, whose adapter fixes the widths of the first
    batch.)
    """

    def __init__(self, sources, targets, batch_size, shuffle=True, seed=0):
        self.sources, self.targets = sources, targets
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.lengths = np.array([max(len(s), len(t) + 1) for s, t in zip(sources, targets)])
        self.batches = self._make_batches()

    def set_epoch(self, epoch):
        if epoch != self.epoch:
            self.epoch = epoch
            self.batches = self._make_batches()

    def _make_batches(self):
        count = len(self.sources)
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(count) if self.shuffle else np.arange(count)
        pool = self.batch_size * 50
        batches = []
        for start in range(0, count, pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        batch = self.batches[index]
        source_width = _round_up(max(len(self.sources[i]) for i in batch))
        target_width = _round_up(max(len(self.targets[i]) + 1 for i in batch))
        encoder = np.zeros((len(batch), source_width), "int32")
        decoder = np.zeros((len(batch), target_width), "int32")
        labels = np.zeros((len(batch), target_width), "int32")
        for row, i in enumerate(batch):
            source, target = self.sources[i], self.targets[i]
            encoder[row, : len(source)] = source
            decoder[row, : len(target) + 1] = np.concatenate([[tokenization.START_ID], target])
            labels[row, : len(target) + 1] = np.concatenate([target, [tokenization.END_ID]])
        weights = (labels != tokenization.PAD_ID).astype("float32")
        return {"encoder_token_ids": encoder, "decoder_token_ids": decoder}, labels, weights

    def dataset(self):
        """A `tf.data.Dataset` of the batches of the current epoch (see `set_epoch`)."""
        import tensorflow as tf

        ids = tf.TensorSpec((None, None), tf.int32)
        signature = ({"encoder_token_ids": ids, "decoder_token_ids": ids}, ids,
                     tf.TensorSpec((None, None), tf.float32))

        def batches():
            for index in range(len(self.batches)):
                yield self[index]

        dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self.batches))).prefetch(2)


def _round_up(width, multiple=8):
    return int(math.ceil(width / multiple) * multiple)


class EpochOrder(keras.callbacks.Callback):
    """Tells the batches which epoch starts, so that the order depends on the epoch only."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class TimeLimit(keras.callbacks.Callback):
    """Stops training after `minutes` (checked after every batch)."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds = minutes * 60.0
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


# === Model and training ===
def compile_translator(translator, learning_rate, warmup_steps, decay, total_steps, label_smoothing,
                       finetuning=None):
    """Adam with a warmup schedule, label-smoothed cross-entropy, token accuracy.

    `finetuning` (a prepared `FineTuning`) may make the optimizer layer-wise.
    """
    from keras_attention.finetune import WarmupSchedule

    warmup_steps = int(min(warmup_steps, max(total_steps - 1, 0)))
    schedule = WarmupSchedule(learning_rate, warmup_steps=warmup_steps, decay=decay,
                              total_steps=total_steps if decay in ("linear", "cosine") else None)
    optimizer = keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9, clipnorm=CLIP_NORM)
    if finetuning is not None:
        optimizer = finetuning.optimizer(optimizer)
    translator.compile(
        optimizer=optimizer,
        loss=LabelSmoothedCrossEntropy(label_smoothing),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def train(data=None, output=None, source="en", target="de", architecture=ARCHITECTURE, epochs=None,
          batch_size=None, seed=0, resume=False, overwrite=False, quiet=False, vocabulary_size=None,
          shared_vocabulary=None, sequence_length=None, learning_rate=None, warmup_steps=None, decay=None,
          label_smoothing=None, max_minutes=None, max_examples=None, evaluate_examples=None, model=None):
    """Train a translator from scratch and write a run folder.

    Args:
        data, source, target: the data (see `applications.translation.data`).
        output: the run folder.
        architecture: `"transformer"` or `"rnn-attention"`.
        model: dict of model settings overriding `MODELS[architecture]`.
        max_minutes: stop training after this long (the run is still
            evaluated and saved).
        max_examples: train (and validate) on the first N pairs only.
        evaluate_examples: score the first N test pairs only.
        Other arguments override the settings at the top of this file.

    Returns:
        The metrics dict (also in `metrics.json`).
    """
    if architecture not in MODELS:
        raise UserError(f"Unknown --architecture {architecture!r}. Expected one of {', '.join(MODELS)}.")
    recipe = dict(RECIPES[architecture])
    recipe.update({k: v for k, v in dict(epochs=epochs, learning_rate=learning_rate, warmup_steps=warmup_steps,
                                         decay=decay).items() if v is not None})
    model_settings = dict(MODELS[architecture], **(model or {}))
    check_settings(architecture, model_settings, max_minutes)
    vocabulary_size = vocabulary_size or VOCABULARY_SIZE
    shared_vocabulary = SHARED_VOCABULARY if shared_vocabulary is None else shared_vocabulary
    sequence_length = sequence_length or SEQUENCE_LENGTH
    batch_size = batch_size or BATCH_SIZE
    label_smoothing = LABEL_SMOOTHING if label_smoothing is None else label_smoothing
    set_seed(seed)
    start = time.perf_counter()

    train_corpus = drop_empty_pairs(load_parallel_text(data, source, target, "train"))
    if max_examples:
        train_corpus = train_corpus.subset(range(min(max_examples, len(train_corpus))))
    validation_corpus = _optional_split(data, source, target, "validation")
    if max_examples and validation_corpus is not None:
        validation_corpus = validation_corpus.subset(range(min(max_examples, len(validation_corpus))))
    print(f"Training on {len(train_corpus)} pairs of {train_corpus.description}.")

    with RunFolder(output, resume=resume, overwrite=overwrite) as run:
        source_tokenizer, target_tokenizer = build_tokenizers(train_corpus, vocabulary_size, shared_vocabulary)
        if architecture == "transformer":
            model_settings.setdefault("share_embeddings", shared_vocabulary)
        seq2seq = build_seq2seq(architecture, source_tokenizer.vocabulary_size(),
                                target_tokenizer.vocabulary_size(), sequence_length, **model_settings)
        translator = Translator(seq2seq, source_tokenizer, target_tokenizer)
        vocabulary_seconds = time.perf_counter() - start
        train_batches = TranslationBatches(*encode_pairs(translator, train_corpus), batch_size, seed=seed)
        validation_batches = None
        if validation_corpus is not None:
            validation_batches = TranslationBatches(
                *encode_pairs(translator, drop_empty_pairs(validation_corpus)), batch_size, shuffle=False)
        total_steps = recipe["epochs"] * len(train_batches)
        compile_translator(translator, recipe["learning_rate"], recipe["warmup_steps"], recipe["decay"],
                           total_steps, label_smoothing)
        callbacks = [EpochOrder(train_batches)]
        if max_minutes:
            callbacks.append(TimeLimit(max_minutes))
        training_start = time.perf_counter()
        history = fit(translator, train_batches.dataset(), run, recipe["epochs"],
                      validation_data=validation_batches and validation_batches.dataset(),
                      callbacks=callbacks, quiet=quiet)
        training_seconds = time.perf_counter() - training_start

        settings = dict(
            application="translation", architecture=architecture, model=model_settings,
            data=str(data) if data else "multi30k",
            source_language=source, target_language=target, vocabulary_size=vocabulary_size,
            shared_vocabulary=shared_vocabulary, source_vocabulary=source_tokenizer.vocabulary_size(),
            target_vocabulary=target_tokenizer.vocabulary_size(), sequence_length=sequence_length,
            batch_size=batch_size, label_smoothing=label_smoothing, seed=seed, **recipe, **runtime_settings(),
        )
        translator.save(run.file(MODEL_FILE))
        write_json(run.file(SETTINGS_FILE), settings)
        metrics = dict(
            architecture=architecture,
            train_examples=len(train_corpus),
            epochs_completed=len(history),
            vocabulary_seconds=round(vocabulary_seconds, 1),
            training_seconds=round(training_seconds, 1),
            parameters=int(seq2seq.count_params()),
        )
        if history:
            metrics.update({k: v for k, v in history[-1].items() if k not in ("epoch", "seconds")})
        metrics.update(_final_scores(translator, data, source, target, run, evaluate_examples))
        metrics["total_seconds"] = round(time.perf_counter() - start, 1)
        write_json(run.file(METRICS_FILE), metrics)
    print(f"Wrote {run.path}")
    return metrics


def _optional_split(data, source, target, split):
    try:
        return load_parallel_text(data, source, target, split)
    except UserError:
        return None


def _final_scores(translator, data, source, target, run, evaluate_examples=None):
    """Test BLEU/chrF, greedy and beam, with hypotheses in the run; the alignment picture."""
    test = _optional_split(data, source, target, "test")
    if test is None:
        return {}
    if evaluate_examples:
        test = test.subset(range(min(evaluate_examples, len(test))))
    results = {}
    for name, search in (("greedy", dict(search="greedy")), ("beam", dict(search="beam", **SEARCH))):
        scores = evaluation.score_translator(translator, test, output=run.file(f"test-{name}"), **search)
        results.update({f"test_bleu_{name}": round(scores["bleu"], 2), f"test_chrf_{name}": round(scores["chrf"], 2),
                        f"test_seconds_{name}": scores["seconds"]})
    results["bleu_signature"] = scores["bleu_signature"]
    sentence = ALIGNMENT_SENTENCE if ALIGNMENT_SENTENCE in test.sources else next(s for s in test.sources if s)
    evaluation.save_alignment(translator, sentence, run.file(evaluation.ALIGNMENT_FILE))
    return results


def finetune(model, data=None, output=None, source=None, target=None, epochs=None, batch_size=None, seed=0,
             resume=False, overwrite=False, quiet=False, learning_rate=None, warmup_steps=None,
             label_smoothing=None, max_minutes=None, max_examples=None, evaluate_examples=None, finetuning=None):
    """Continue training a translator on new pairs (same vocabularies); write a new run folder.

    `finetuning` (a `FineTuning`, `--method`) says which weights train and how; the head is
    the output projection (tied to the decoder's embedding, whose table it shares).
    """
    finetuning = finetuning or FineTuning()
    path = model_path(model)
    translator = evaluation.check_translator(load_model(path), model)
    settings = dict(load_settings(path))
    source = source or settings.get("source_language", "en")
    target = target or settings.get("target_language", "de")
    epochs = epochs or 3
    learning_rate = learning_rate or settings.get("learning_rate", 1e-3) / 5
    warmup_steps = 50 if warmup_steps is None else warmup_steps
    label_smoothing = settings.get("label_smoothing", LABEL_SMOOTHING) if label_smoothing is None else label_smoothing
    batch_size = batch_size or settings.get("batch_size", BATCH_SIZE)
    data = data or settings.get("data")
    set_seed(seed)
    start = time.perf_counter()
    corpus = drop_empty_pairs(load_parallel_text(data, source, target, "train"))
    if max_examples:
        corpus = corpus.subset(range(min(max_examples, len(corpus))))
    with RunFolder(output, resume=resume, overwrite=overwrite) as run:
        batches = TranslationBatches(*encode_pairs(translator, corpus), batch_size, seed=seed)
        validation = _optional_split(data, source, target, "validation")
        validation_batches = None if validation is None else TranslationBatches(
            *encode_pairs(translator, drop_empty_pairs(validation)), batch_size, shuffle=False)
        finetuning.prepare(translator, head=("output_head",))
        compile_translator(translator, learning_rate, warmup_steps, "cosine", max(2, epochs * len(batches)),
                           label_smoothing, finetuning)
        callbacks = [EpochOrder(batches)] + ([TimeLimit(max_minutes)] if max_minutes else [])
        callbacks += finetuning.callbacks
        history = fit(translator, batches.dataset(), run, epochs,
                      validation_data=validation_batches and validation_batches.dataset(), callbacks=callbacks,
                      quiet=quiet)
        finetuning.export(translator).save(run.file(MODEL_FILE))
        settings.update(**runtime_settings())
        settings.update(data=str(data) if data else settings.get("data"), source_language=source,
                        target_language=target, finetuned_from=str(path), epochs=epochs,
                        learning_rate=learning_rate, warmup_steps=warmup_steps)
        write_json(run.file(SETTINGS_FILE), settings)
        metrics = dict(train_examples=len(corpus), epochs_completed=len(history), **finetuning.metrics)
        if history:
            metrics.update({k: v for k, v in history[-1].items() if k not in ("epoch", "seconds")})
        metrics.update(_final_scores(translator, data, source, target, run, evaluate_examples))
        metrics["total_seconds"] = round(time.perf_counter() - start, 1)
        write_json(run.file(METRICS_FILE), metrics)
    print(f"Wrote {run.path}")
    return metrics
