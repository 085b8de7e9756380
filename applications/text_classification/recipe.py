"""Text classification with a small Transformer encoder trained from scratch.

Reads top to bottom: the settings, then data (read, split, learn a WordPiece vocabulary,
tokenize), the model (tokenizer + Transformer encoder + pooling head, taking raw strings),
training (AdamW, warmup and cosine decay, label smoothing, early stopping on a validation
slice of the training split) and evaluation (accuracy, macro-F1, confusion matrix, attention
picture).

Results of these defaults, seed 0 (`benchmarks/text_classification_benchmark.py`; a 2-core x86
CPU shared with other jobs, load average 11-12; wall time of `fit`, CPU time of the whole run):
SST-2 dev 80.28% (11.8 min, 6.9 CPU min), TREC-6 held-out tenth 84.62% (10.3 min, 5.5 CPU min),
SMS Spam Collection held-out fifth 98.92% (11.6 min, 4.5 CPU min). See
`docs/applications/text_classification.md`.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from applications.common.errors import UserError
from applications.common.run_folder import METRICS_FILE
from applications.common.run_folder import MODEL_FILE
from applications.common.run_folder import SETTINGS_FILE
from applications.common.run_folder import RunFolder
from applications.common.run_folder import write_json
from applications.common.runtime import runtime_settings
from applications.common.serving import export_model
from applications.common.serving import load_model
from applications.common.serving import load_settings
from applications.common.serving import model_path
from applications.common.training import fit
from applications.common.training import predict_evenly
from applications.common.training import set_seed
from applications.common.training import warmup_cosine
from applications.text_classification import data as data_lib
from applications.text_classification import evaluation
from applications.text_classification import model as model_lib

# === Settings ===
SETTINGS = {
    # Tokenizer.
    "vocabulary_size": 8000,  # WordPiece pieces, then whole words, learned from training texts
    "min_word_count": 2,  # whole words seen this often join the vocabulary
    "sequence_length": 64,  # pieces kept per text: longer texts are truncated
    "lowercase": True,  # lowercase and strip accents before tokenizing
    # Model: small, because the data sets are small (5-7k examples).
    "hidden_dim": 64,  # embedding and encoder width
    "num_layers": 1,  # Transformer encoder blocks
    "num_heads": 4,  # attention heads (head size 16)
    "intermediate_dim": 128,  # feed-forward width
    "dropout": 0.3,  # attention, feed-forward and head dropout
    "embedding_dropout": 0.3,  # dropout on the token + position embeddings
    "pooling": "mean",  # "mean" | "max" | "attention" | "cls" over the encoder outputs
    "ensemble_size": 8,  # independent members whose probabilities average
    # Training.
    "token_dropout": 0.1,  # fraction of training tokens replaced by [UNK] (augmentation)
    "label_smoothing": 0.1,
    "learning_rate": 1e-3,  # peak of the schedule
    "warmup_fraction": 0.05,  # linear warmup over this fraction of the steps, then cosine
    "weight_decay": 0.05,  # AdamW
    "batch_size": 32,
    "epochs": 8,
    "patience": 3,  # early stopping: epochs without a better validation accuracy
    "validation_fraction": 0.1,  # of the training split, stratified: what early stopping watches
    "finetune_learning_rate": 2e-4,  # peak rate of `finetune`
    "finetune_epochs": 5,
}
ATTENTION_FILE = "attention.png"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
VOCABULARY_FILE = "vocabulary.txt"


# === Data ===


def split_for_training(train, settings, seed):
    """Cut the validation slice (stratified, `seed`) out of the training split."""
    classes = train.class_names
    if len(classes) < 2:
        raise UserError(
            f"{train.source} has one class only ({classes[0]!r}): a classifier needs examples "
            f"of at least two classes."
        )
    fit_part, validation = data_lib.stratified_split(train, settings["validation_fraction"], seed)
    if not validation.texts:  # Every class has a single example: nothing to hold out.
        fit_part, validation = train, train
    return fit_part, validation


def encode(tokenizer, texts, batch_size=1024):
    """Token ids `(N, sequence_length)`, int32, tokenized once before training."""
    pieces = [
        np.asarray(tokenizer(tf.constant(texts[start : start + batch_size], dtype=tf.string)))
        for start in range(0, len(texts), batch_size)
    ]
    return np.concatenate(pieces).astype("int32")


def label_indices(labels, class_names):
    index = {name: i for i, name in enumerate(class_names)}
    return np.array([index[label] for label in labels], dtype="int32")


def targets(labels, num_classes, ensemble_size):
    """One-hot labels for the outputs of the training model: `members` and `ensemble`."""
    one_hot = keras.utils.to_categorical(labels, num_classes).astype("float32")  # [N, C]
    members = np.repeat(one_hot[:, None, :], ensemble_size, axis=1)  # [N, K, C]
    return {"members": members, "ensemble": one_hot}


def training_dataset(token_ids, labels, settings, batch_size, seed):
    """Shuffled (seeded), batched, with `token_dropout` of the tokens replaced by [UNK].

    `labels` is the dict of `targets`.
    """
    unknown_id = model_lib.RESERVED_TOKENS.index(model_lib.UNK_TOKEN)
    rate = settings["token_dropout"]

    def augment(step, batch):
        ids, targets = batch
        # Stateless: the same seed drops the same tokens, so a run repeats exactly.
        noise = tf.random.stateless_uniform(tf.shape(ids), seed=tf.stack([seed, step]))
        ids = tf.where((noise < rate) & (ids > 0), tf.cast(unknown_id, ids.dtype), ids)
        return ids, targets

    dataset = tf.data.Dataset.from_tensor_slices((token_ids, labels))
    dataset = dataset.shuffle(len(token_ids), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).enumerate().map(
        lambda step, batch: augment(tf.cast(step, tf.int32), batch) if rate > 0 else batch
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def validation_dataset(token_ids, labels, batch_size):
    return tf.data.Dataset.from_tensor_slices((token_ids, labels)).batch(batch_size)


# === Model ===


def make_model(train_texts, class_names, settings):
    """Learn the vocabulary on the training texts; build the classifier around it."""
    vocabulary = model_lib.learn_vocabulary(
        train_texts,
        settings["vocabulary_size"],
        min_word_count=settings["min_word_count"],
        lowercase=settings["lowercase"],
    )
    tokenizer = model_lib.build_tokenizer(
        vocabulary, settings["sequence_length"], lowercase=settings["lowercase"]
    )
    return _build_classifier(tokenizer, class_names, settings)


def model_from_encoder(text_encoder, class_names, settings):
    """A classifier that starts from a pretrained text encoder (`pretraining.py`).

    The encoder's tokenizer is kept, and its embedding, encoder blocks and final norm are
    copied into every member; the heads are new.
    """
    try:
        tokenizer = text_encoder.get_layer("tokenizer")
        encoder = text_encoder.get_layer("encoder")
    except ValueError:
        raise UserError(
            f"The pretrained model {text_encoder.name!r} has no 'tokenizer' and 'encoder' layers: "
            f"give a run folder written by `keras-attention pretrain text`."
        ) from None
    classifier, trained = _build_classifier(tokenizer, class_names, settings)
    for member in model_lib.parts(classifier)["members"]:
        model_lib.copy_encoder_weights(encoder, member)
    return classifier, trained


def _build_classifier(tokenizer, class_names, settings):
    return model_lib.build_classifier(
        tokenizer,
        class_names,
        hidden_dim=settings["hidden_dim"],
        num_layers=settings["num_layers"],
        num_heads=settings["num_heads"],
        intermediate_dim=settings["intermediate_dim"],
        dropout=settings["dropout"],
        embedding_dropout=settings["embedding_dropout"],
        pooling=settings["pooling"],
        ensemble_size=settings["ensemble_size"],
    )


def compile_for_training(training_model, settings, steps, learning_rate, finetuning=None):
    """AdamW on a warmup-cosine schedule; the members' mean loss, the average's accuracy.

    `finetuning` (a prepared `FineTuning`) may make the optimizer layer-wise.
    """
    schedule = warmup_cosine(learning_rate, steps, int(settings["warmup_fraction"] * steps))
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=settings["weight_decay"])
    training_model.compile(
        optimizer=finetuning.optimizer(optimizer) if finetuning is not None else optimizer,
        loss={
            "members": keras.losses.CategoricalCrossentropy(
                label_smoothing=settings["label_smoothing"]
            )
        },
        metrics={"ensemble": ["accuracy"]},
    )


# === Training ===


def train(
    data,
    output,
    epochs=None,
    batch_size=None,
    seed=0,
    resume=False,
    overwrite=False,
    quiet=False,
    settings=None,
    reader_options=None,
    max_examples=None,
    base_model=None,
    tuning=None,
    encoder=None,
):
    """Train a classifier on the `train` split of `data`; write the run folder `output`.

    With `base_model` (a `TextClassifier`), continue training it (`finetune`): its tokenizer
    and classes are kept, and the labels of `data` must be among its classes. With `encoder`
    (a pretraining run folder), start a new classifier from its text encoder
    (`model_from_encoder`). A classifier continues at the fine-tuning rate and epochs; a new
    classifier on a pretrained encoder trains on the training schedule. `tuning` (a
    `FineTuning`, `--method`) says which weights train and how.

    Returns:
        The metrics written to `metrics.json`.
    """
    settings = {**SETTINGS, **(settings or {})}
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise UserError(
            f"Unknown settings: {', '.join(unknown)}. Expected some of {', '.join(SETTINGS)}."
        )
    finetuning = base_model is not None or encoder is not None
    # Flag values the model cannot use, refused before the data is read and the run folder made.
    if not finetuning:
        model_lib.check_vocabulary_size(settings["vocabulary_size"])
    if settings["num_heads"] > settings["hidden_dim"]:
        raise UserError(
            f"--num-heads {settings['num_heads']} is more than --hidden-dim {settings['hidden_dim']}: "
            "each attention head needs at least one dimension of the width. Give at most "
            f"{settings['hidden_dim']} heads, or a larger --hidden-dim."
        )
    # A trained classifier continues gently. A pretrained encoder gets a new head that learns
    # from nothing: the training schedule (SST-2 validation slice, seed 0, 5 epochs: 79.2% at
    # 1e-3 against 66.2% at 3e-4, still climbing).
    gentle = base_model is not None
    epochs = epochs or settings["finetune_epochs" if gentle else "epochs"]
    learning_rate = settings["finetune_learning_rate" if gentle else "learning_rate"]
    batch_size = batch_size or settings["batch_size"]
    set_seed(seed)
    splits = data_lib.load_splits(data, **(reader_options or {}))
    train_split = splits.get("train")
    if max_examples and max_examples < len(train_split):
        _, train_split = data_lib.stratified_split(
            train_split, max_examples / len(train_split), seed
        )
    fit_part, validation = split_for_training(train_split, settings, seed)
    if base_model is not None:
        class_names = base_model.class_names
        evaluation.check_labels(train_split.labels, class_names, train_split.source)
    else:
        class_names = train_split.class_names
    # Evaluate on the held-out split when there is one, else on the validation slice.
    held_out = splits.evaluation_split
    if held_out == "all" or not splits.splits[held_out].texts:
        held_out = None  # A file too small to hold anything out.
    else:
        check_held_out_classes(splits.get(held_out), class_names, quiet)

    with RunFolder(output, resume=resume, overwrite=overwrite) as run:
        started = time.perf_counter()
        if base_model is not None:
            classifier = base_model
            trained = model_lib.training_model(classifier)
        elif encoder is not None:
            classifier, trained = model_from_encoder(load_model(encoder), class_names, settings)
        else:
            classifier, trained = make_model(fit_part.texts, class_names, settings)
        tokenizer = model_lib.parts(classifier)["tokenizer"]
        ensemble_size = len(model_lib.parts(classifier)["members"])
        train_ids = encode(tokenizer, fit_part.texts)
        validation_ids = encode(tokenizer, validation.texts)
        train_targets = targets(
            label_indices(fit_part.labels, class_names), len(class_names), ensemble_size
        )
        validation_targets = targets(
            label_indices(validation.labels, class_names), len(class_names), ensemble_size
        )
        steps = int(np.ceil(len(train_ids) / batch_size)) * epochs
        callbacks = [
            keras.callbacks.EarlyStopping(
                monitor="val_ensemble_accuracy",
                mode="max",
                patience=settings["patience"],
                restore_best_weights=True,
            )
        ]
        if tuning is not None:
            tuning.prepare(trained, head=("head",))
            callbacks += tuning.callbacks
        compile_for_training(trained, settings, steps, learning_rate, tuning)
        preparation_seconds = time.perf_counter() - started

        started = time.perf_counter()
        history = fit(
            trained,
            training_dataset(train_ids, train_targets, settings, batch_size, seed),
            run,
            epochs,
            validation_data=validation_dataset(validation_ids, validation_targets, 256),
            callbacks=callbacks,
            quiet=quiet,
            shuffle=False,  # The dataset is shuffled, with the seed.
        )
        training_seconds = time.perf_counter() - started

        evaluated = splits.get(held_out) if held_out else validation
        metrics = measure(classifier, evaluated, batch_size=256)
        write_pictures(classifier, evaluated, metrics, run.file(CONFUSION_MATRIX_FILE),
                       run.file(ATTENTION_FILE))
        metrics = {
            "data": splits.name,
            "evaluated_on": held_out or "validation slice of train (used for early stopping)",
            **metrics,
            "validation_accuracy": max(
                (row.get("val_ensemble_accuracy", 0.0) for row in history), default=0.0
            ),
            "epochs_run": len(history),
            "training_seconds": round(training_seconds, 1),
            # Learning the vocabulary, building the model, tokenizing.
            "preparation_seconds": round(preparation_seconds, 1),
            "train_examples": len(fit_part),
            "validation_examples": len(validation),
            **(tuning.metrics if tuning is not None else {}),
        }
        run_settings = {
            "application": "text-classification",
            **settings,
            "data": str(data),
            "epochs": epochs,
            "peak_learning_rate": learning_rate,
            "batch_size": batch_size,
            "seed": seed,
            "max_examples": max_examples,
            "finetuned": finetuning,
            "pretrained": None if encoder is None else str(encoder),
            "class_names": class_names,
            "reader_options": reader_options or {},
            **runtime_settings(),
        }
        write_json(run.file(SETTINGS_FILE), run_settings)
        write_json(run.file(METRICS_FILE), metrics)
        vocabulary = tokenizer.get_vocabulary()
        run.file(VOCABULARY_FILE).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        (tuning.export(classifier) if tuning is not None else classifier).save(run.file(MODEL_FILE))
    return metrics


def check_held_out_classes(held_out, class_names, quiet=False):
    """Before training: refuse a held-out split with classes the model will not know.

    Training classes that the held-out split lacks are allowed, with a note: aclImdb's
    `train/unsup` folder of unlabeled reviews, for one, trains as a class unless moved out.
    """
    tested = set(held_out.labels)
    unknown = sorted(tested - set(class_names))
    if unknown:
        raise UserError(
            f"{held_out.source} has classes the model will not learn: "
            f"{', '.join(map(repr, unknown[:5]))} (it learns {', '.join(map(repr, class_names))}). "
            f"Give the training data examples of every class."
        )
    untested = [name for name in class_names if name not in tested]
    if untested and not quiet:
        print(f"Note: classes with no example in {held_out.source}: {', '.join(map(repr, untested))}. "
              "They train, but the evaluation cannot score them. Is one a folder that holds no class?")


def finetune(model, data, output, settings=None, **kwargs):
    """Continue training the model of run `model` on `data`; write a new run folder.

    From a classifier run: its tokenizer, classes and settings are kept (`settings`
    overrides the training ones). From a pretraining run (`keras-attention pretrain text`):
    a new classifier of the recipe's settings (`settings` overrides them) on the run's
    tokenizer and encoder, with the classes of `data`, trained on the training schedule
    (`learning_rate` and `epochs`); from a classifier, at `finetune_learning_rate` for
    `finetune_epochs`, which a `learning_rate` in `settings` (`--learning-rate`) replaces.
    """
    from applications.text_classification import pretraining

    base_settings = load_settings(model)
    settings = dict(settings or {})
    if base_settings.get("task") == pretraining.TASK:
        kept = {key: base_settings[key] for key in pretraining.ENCODER_SETTINGS if key in base_settings}
        return train(data, output, settings={**kept, **settings}, encoder=model, **kwargs)
    if "ensemble_size" in settings:
        raise UserError(
            f"--ensemble-size: {model} is a trained classifier of "
            f"{base_settings.get('ensemble_size', '?')} members, kept as it is; the flag applies "
            f"when fine-tuning from a pretraining run (keras-attention pretrain text)."
        )
    if "learning_rate" in settings:
        settings["finetune_learning_rate"] = settings.pop("learning_rate")
    classifier = load_classifier(model)
    base_settings = {k: v for k, v in base_settings.items() if k in SETTINGS}
    return train(data, output, settings={**base_settings, **settings}, base_model=classifier, **kwargs)


# === Evaluation ===


def load_classifier(path):
    """The `TextClassifier` of a run folder or `.keras` file (not an export)."""
    classifier = load_model(path)
    if not isinstance(classifier, model_lib.TextClassifier):
        raise UserError(
            f"--model {path}: not a text-classification model (it is a "
            f"{type(classifier).__name__}). Give a run folder written by "
            f"`keras-attention train text-classification`."
        )
    return classifier


def measure(classifier, data, batch_size=256):
    """Accuracy, macro-F1 and confusion matrix of `classifier` on `data` (raw strings)."""
    evaluation.check_labels(data.labels, classifier.class_names, data.source)
    probabilities = predict_probabilities(classifier, data.texts, batch_size)
    return evaluation.classification_metrics(
        label_indices(data.labels, classifier.class_names),
        probabilities.argmax(axis=-1),
        classifier.class_names,
    )


def evaluate(model, data=None, split=None, batch_size=None, reader_options=None):
    """Measure the model of run `model` on a split of `data`; write the confusion matrix.

    `data` defaults to the data the run was trained on, `split` to the held-out split
    (test, else validation, else all). The confusion matrix PNG goes beside the model
    (`confusion_matrix_<data>_<split>.png`) when the run folder is writable.
    """
    classifier = load_classifier(model)
    settings = load_settings(model)
    if data is None:
        data = settings.get("data")
        reader_options = reader_options or settings.get("reader_options") or {}
        if data is None:
            raise UserError("No data given: pass --data PATH or the name of a known data set.")
    splits = data_lib.load_splits(data, **(reader_options or {}))
    split = split or splits.evaluation_split
    evaluated = splits.get(split)
    metrics = measure(classifier, evaluated, batch_size=batch_size or 256)
    print(f"Evaluated {len(evaluated)} examples of {splits.name} ({split}).")
    _print_confusion_matrix(metrics["confusion_matrix"], metrics["class_names"])
    picture = model_path(model).parent / (
        f"confusion_matrix_{_safe_name(splits.name)}_{split}.png"
    )
    try:
        evaluation.plot_confusion_matrix(
            metrics["confusion_matrix"], metrics["class_names"], picture,
            title=f"{splits.name} ({split}): accuracy {metrics['accuracy']:.4f}",
        )
        metrics["confusion_matrix_png"] = str(picture)
    except OSError:  # A read-only run folder: the numbers are still printed.
        pass
    return {"data": splits.name, "split": split, **metrics}


def predict(model, texts=(), file=None, attention=None, batch_size=None):
    """Classify raw texts with a run folder, a `.keras` file or an export; print each result.

    Returns:
        `{"predictions": [{"text", "label", "probability", "probabilities"}, ...]}`.
    """
    texts = list(texts)
    if file is not None:
        texts += [line for line in data_lib.read_text_lines(file) if line.strip()]
    if not texts:
        raise UserError("No text to classify: give texts as arguments, or --file FILE.")
    classifier = load_model(model)
    class_names = getattr(classifier, "class_names", None) or load_settings(model).get(
        "class_names"
    )
    if not class_names:
        raise UserError(f"--model {model}: no class names found (settings.json is missing).")
    probabilities = np.asarray(classifier.predict(texts, batch_size=batch_size or 256, verbose=0))
    predictions = []
    for text, row in zip(texts, probabilities):
        best = int(row.argmax())
        predictions.append(
            {
                "text": text,
                "label": class_names[best],
                "probability": float(row[best]),
                "probabilities": {name: float(p) for name, p in zip(class_names, row)},
            }
        )
        shown = text if len(text) <= 70 else text[:67] + "..."
        print(f"{class_names[best]}\t{row[best]:.4f}\t{shown}")
    results = {"predictions": predictions}
    if attention is not None:
        if not isinstance(classifier, model_lib.TextClassifier):
            raise UserError("--attention needs a run folder or .keras file, not an export.")
        write_attention_picture(classifier, texts[0], attention)
        print(f"Wrote {attention}")
        results["attention_png"] = str(attention)
    return results


def export(model, output=None, overwrite=False):
    """Write a TensorFlow SavedModel of run `model` that takes raw strings (`serve`)."""
    classifier = load_classifier(model)
    output = output or model_path(model).parent / "export"
    settings = {**load_settings(model), "class_names": classifier.class_names}
    path = export_model(classifier, output, settings=settings, overwrite=overwrite)
    print(f"Exported to {path}; run it with: keras-attention predict text-classification "
          f"--model {path} \"some text\"")
    return {"export": str(path)}


def predict_probabilities(classifier, texts, batch_size=256):
    """Class probabilities `(N, num_classes)` for a list of raw strings."""
    if not len(texts):
        return np.zeros((0, len(classifier.class_names or [])), dtype="float32")
    return np.asarray(predict_evenly(classifier, list(texts), batch_size))


def write_pictures(classifier, data, metrics, confusion_path, attention_path):
    """The confusion matrix and the attention over the first text of `data`."""
    evaluation.plot_confusion_matrix(
        metrics["confusion_matrix"],
        metrics["class_names"],
        confusion_path,
        title=f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}",
    )
    write_attention_picture(classifier, data.texts[0], attention_path)


def write_attention_picture(classifier, text, path):
    """The attention over the tokens of `text`, with the prediction as the title."""
    probabilities = predict_probabilities(classifier, [text])[0]
    best = int(probabilities.argmax())
    shown = text if len(text) <= 60 else text[:57] + "..."
    title = f"{classifier.class_names[best]} ({probabilities[best]:.2f}): {shown}"
    attention = model_lib.attention_over_tokens(classifier, text)
    try:
        return evaluation.plot_attention(attention, path, title=title)
    except OSError as error:
        raise UserError(f"Cannot write {path}: {error.strerror}.") from None


def _print_confusion_matrix(matrix, class_names):
    if len(class_names) > 12:
        return
    width = max(6, *(len(name) for name in class_names)) + 2
    print("confusion matrix (rows: true, columns: predicted)")
    print(" " * width + "".join(f"{name:>{width}}" for name in class_names))
    for name, row in zip(class_names, matrix):
        print(f"{name:<{width}}" + "".join(f"{count:>{width}}" for count in row))


def _safe_name(name):
    return "".join(char if char.isalnum() or char in "-_" else "_" for char in str(name))[-40:]
