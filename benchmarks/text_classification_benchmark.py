"""Run the default text-classification recipe on SST-2, TREC-6 and the SMS Spam Collection.

    python benchmarks/text_classification_benchmark.py                       # all three
    python benchmarks/text_classification_benchmark.py --data sst2
    python benchmarks/text_classification_benchmark.py --data trec --epochs 2 --max-examples 2000
    python benchmarks/text_classification_benchmark.py --baseline            # seconds: a reference

Each run is `applications.text_classification.recipe.train` with the recipe's `SETTINGS`
(exactly what `keras-attention train text-classification --data NAME` runs), seed 0. The
results go to `benchmarks/results/text_classification.md`: accuracy and macro-F1 on the
held-out split (SST-2: the published dev split; TREC: the held-out tenth of the training
file; SMS: the stratified fifth), the time spent learning the vocabulary and training, the
wall and CPU time of the whole run, and the machine (cores, load average): on a shared
machine wall time stretches beyond what the recipe needs. Runs with `--epochs` or
`--max-examples` are marked as shortened and never count as meeting a target.

`--baseline` instead fits a classical reference on the same splits, in seconds: TF-IDF of word
1-2-grams and character 2-5-grams, and a linear SVM (scikit-learn). It tells how hard each
held-out split is (TREC's held-out tenth of the training file is harder than TREC's official
test set, on which the published CNN figures are measured).

The data directory defaults to `../shared/data` beside the checkout (set
`KERAS_ATTENTION_DATA` to use another).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_ATTENTION_DATA", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = ROOT / "benchmarks" / "results" / "text_classification.md"
# The rows so far, by data set: a run of one data set replaces only its own row.
ROWS = ROOT / "benchmarks" / "results" / "text_classification.json"
BASELINE_ROWS = ROOT / "benchmarks" / "results" / "text_classification_baseline.json"
# data set -> (accuracy target, the split it is measured on, training-time budget in seconds)
TARGETS = {
    "sst2": (0.80, "validation (dev)", 20 * 60),
    "trec": (0.91, "test (held-out tenth)", None),
    "sms-spam": (0.985, "test (stratified fifth)", None),
}


def run_recipe(name, epochs=None, max_examples=None, keep=None, seed=0):
    from applications.text_classification import recipe

    output = Path(keep) / name if keep else Path(tempfile.mkdtemp()) / name
    if output.exists():
        shutil.rmtree(output)
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    metrics = recipe.train(name, output, epochs=epochs, max_examples=max_examples, seed=seed,
                           quiet=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not keep:
        shutil.rmtree(output.parent, ignore_errors=True)
    return {
        "data": name,
        "settings": dict(recipe.SETTINGS, epochs=epochs or recipe.SETTINGS["epochs"]),
        "metrics": metrics,
        "wall": wall,
        "cpu": cpu,
        "load": (load_before + os.getloadavg()[0]) / 2,
        "shortened": bool(epochs or max_examples),
        "max_examples": max_examples,
        "seed": seed,
    }


def run_baseline(name):
    """TF-IDF (word 1-2-grams + character 2-5-grams) and a linear SVM, on the same splits."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.pipeline import make_union
    from sklearn.svm import LinearSVC

    from applications.text_classification import data

    splits = data.load_splits(name)
    train, evaluated = splits.get("train"), splits.get(splits.evaluation_split)
    started = time.perf_counter()
    model = make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ),
        LinearSVC(C=0.5),
    )
    model.fit(train.texts, train.labels)
    predictions = model.predict(evaluated.texts)
    seconds = time.perf_counter() - started
    accuracy = float(np.mean(predictions == np.asarray(evaluated.labels)))
    macro_f1 = f1_score(evaluated.labels, predictions, average="macro")
    split = TARGETS.get(name, (None, splits.evaluation_split, None))[1]
    return f"| {name} | {split} | {accuracy:.2%} | {macro_f1:.4f} | {seconds:.0f} s |"


def table_row(result):
    settings, metrics = result["settings"], result["metrics"]
    target, split, budget = TARGETS.get(result["data"], (None, metrics["evaluated_on"], None))
    met = ""
    if target is not None and not result["shortened"]:
        in_time = budget is None or metrics["training_seconds"] <= budget
        met = "yes" if metrics["accuracy"] >= target and in_time else "no"
    note = "shortened check" if result["shortened"] else "default recipe"
    if result["max_examples"]:
        note += f", {result['max_examples']} training examples"
    recipe = (
        f"{settings['ensemble_size']} x ({settings['num_layers']} block, {settings['hidden_dim']} wide, "
        f"{settings['num_heads']} heads), {settings['pooling']} pooling, "
        f"{metrics['epochs_run']}/{settings['epochs']} epochs"
    )
    return (
        f"| {result['data']} | {split} | {recipe} | {metrics['accuracy']:.2%} | "
        f"{metrics['macro_f1']:.4f} | {metrics['preparation_seconds'] / 60:.1f} min | "
        f"{metrics['training_seconds'] / 60:.1f} min | "
        f"{result['wall'] / 60:.1f} min | {result['cpu'] / 60:.1f} min | {result['load']:.1f} | "
        f"{note} | {met} |"
    )


def write_results(results):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(ROWS.read_text()) if ROWS.exists() else {}
    rows.update({r["data"]: table_row(r) for r in results})
    ROWS.write_text(json.dumps(rows, indent=2) + "\n")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
    lines = [
        "# Text classification: results of the default recipe",
        "",
        f"Written by `benchmarks/text_classification_benchmark.py` on "
        f"{datetime.date.today().isoformat()}; {machine}; keras {_keras_version()}.",
        "Seed 0. Training is `model.fit` (early stopping included); vocabulary + tokenizing is "
        "learning the WordPiece vocabulary, building the model and tokenizing the training texts; "
        "wall time is the whole run (also reading the data, evaluating, the pictures, saving). "
        "CPU time is the process's (all threads). The load average shows how busy the machine was: "
        "with more runnable jobs than cores, times stretch beyond what the recipe needs.",
        "",
        "| data | evaluated on | recipe | accuracy | macro-F1 | vocabulary + tokenizing | training "
        "| wall time | CPU time | load average | run | target met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows.values(),
        "",
        *_baseline_table(),
        "Targets: SST-2 >= 80% on dev in <= 20 min of training, TREC-6 >= 91% on the held-out "
        "tenth, SMS Spam Collection >= 98.5% on the stratified fifth, on a 2-core CPU, from scratch.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"Wrote {RESULTS}")


def _baseline_table():
    if not BASELINE_ROWS.exists():
        return []
    rows = json.loads(BASELINE_ROWS.read_text())
    return [
        "Reference on the same splits (`--baseline`): TF-IDF of word 1-2-grams and character "
        "2-5-grams, linear SVM (C=0.5), scikit-learn.",
        "",
        "| data | evaluated on | accuracy | macro-F1 | fit and predict |",
        "|---|---|---|---|---|",
        *rows.values(),
        "",
    ]


def _keras_version():
    import keras

    return keras.__version__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sst2,trec,sms-spam", help="comma-separated data sets")
    parser.add_argument("--epochs", type=int, help="shorten the recipe to this many epochs")
    parser.add_argument("--max-examples", type=int, help="train on this many examples only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", metavar="DIR", help="keep the run folders in DIR")
    parser.add_argument("--baseline", action="store_true",
                        help="fit the TF-IDF + linear SVM reference instead (seconds)")
    args = parser.parse_args(argv)
    if args.baseline:
        rows = json.loads(BASELINE_ROWS.read_text()) if BASELINE_ROWS.exists() else {}
        for name in args.data.split(","):
            rows[name.strip()] = run_baseline(name.strip())
            print(rows[name.strip()], flush=True)
        BASELINE_ROWS.parent.mkdir(parents=True, exist_ok=True)
        BASELINE_ROWS.write_text(json.dumps(rows, indent=2) + "\n")
        write_results([])
        return
    for name in args.data.split(","):
        result = run_recipe(name.strip(), args.epochs, args.max_examples, args.keep, args.seed)
        print(table_row(result), flush=True)
        write_results([result])  # After each data set: an interrupted run keeps what it did.


if __name__ == "__main__":
    main()
