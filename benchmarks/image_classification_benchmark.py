"""Run the default image-classification recipes and write the results table.

    python benchmarks/image_classification_benchmark.py                  # digits and fashion-mnist
    python benchmarks/image_classification_benchmark.py --data digits
    python benchmarks/image_classification_benchmark.py --data fashion-mnist --epochs 2 --max-examples 5000

Each recipe trains with `applications.image_classification.train` (exactly what
`keras-attention train image-classification --data NAME` runs) and the
results go to `benchmarks/results/image_classification.md`: test accuracy,
wall-clock and CPU time, and the machine (cores, load average), since a
shared machine makes wall-clock times longer than the recipe needs. Runs
with `--epochs` or `--max-examples` are marked as shortened.

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

RESULTS = ROOT / "benchmarks" / "results" / "image_classification.md"
# The rows so far, by data set: a run of one recipe replaces only its own row.
ROWS = ROOT / "benchmarks" / "results" / "image_classification.json"
TARGETS = {"digits": (0.98, 3 * 60), "fashion-mnist": (0.925, 30 * 60)}  # (accuracy, seconds)


def run_recipe(name, epochs=None, max_examples=None, keep=None):
    from applications.image_classification import recipe_for, train

    output = Path(keep) / name if keep else Path(tempfile.mkdtemp()) / name
    if output.exists():
        shutil.rmtree(output)
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    metrics = train(name, output, epochs=epochs, max_examples=max_examples, seed=0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    recipe = recipe_for(name, epochs=epochs)
    if not keep:
        shutil.rmtree(output.parent, ignore_errors=True)
    return {
        "data": name,
        "recipe": recipe,
        "metrics": metrics,
        "wall": wall,
        "cpu": cpu,
        "load": (load_before + os.getloadavg()[0]) / 2,
        "shortened": bool(epochs or max_examples),
        "max_examples": max_examples,
    }


def table_row(result):
    model, recipe = result["recipe"]["model"], result["recipe"]
    target_accuracy, target_seconds = TARGETS.get(result["data"], (None, None))
    accuracy = result["metrics"]["test_accuracy"]
    met = ""
    if target_accuracy is not None and not result["shortened"]:
        met = "yes" if accuracy >= target_accuracy and result["wall"] <= target_seconds else "no"
    note = "shortened check" if result["shortened"] else "default recipe"
    if result["max_examples"]:
        note += f", {result['max_examples']} training examples"
    augmentation = ", ".join(f"{k} {v}" for k, v in recipe["augmentation"].items() if v) or "none"
    stem = f" (convolutional stem {'-'.join(map(str, model['stem_filters']))})" if model["stem_filters"] else ""
    mirror = ", test-time flip" if model.get("test_time_flip") else ""
    return (
        f"| {result['data']} | ViT-{model['size']} patch {model['patch_size']}{stem}, {model['pooling']} pooling"
        f"{mirror}, "
        f"{recipe['epochs']} epochs, batch {recipe['batch_size']}, augmentation: {augmentation} | "
        f"{accuracy:.2%} | "
        f"{result['wall'] / 60:.1f} min | {result['cpu'] / 60:.1f} min | {result['load']:.1f} | {note} | "
        f"{met} |"
    )


def write_results(results):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(ROWS.read_text()) if ROWS.exists() else {}
    rows.update({r["data"]: table_row(r) for r in results})
    ROWS.write_text(json.dumps(rows, indent=2) + "\n")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
    lines = [
        "# Image classification: results of the default recipes",
        "",
        f"Written by `benchmarks/image_classification_benchmark.py` on "
        f"{datetime.date.today().isoformat()}; {machine}; keras {_keras_version()}.",
        "Test accuracy on the test split (Fashion-MNIST: the official 10,000; digits: the held-out fifth, "
        "359 images). Wall time includes data loading, training, evaluation and the pictures; CPU time is "
        "the process's (all threads). The load average shows how busy the machine was: with more runnable "
        "jobs than cores, wall time stretches beyond what the recipe needs.",
        "",
        "| data | recipe | test accuracy | wall time | CPU time | load average | run | target met |",
        "|---|---|---|---|---|---|---|---|",
        *rows.values(),
        "",
        "Targets: digits >= 98% in <= 3 min, Fashion-MNIST >= 92.5% in <= 30 min, on a 2-core CPU.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"Wrote {RESULTS}")


def _keras_version():
    import keras

    return keras.__version__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits,fashion-mnist", help="comma-separated recipe names")
    parser.add_argument("--epochs", type=int, help="shorten the recipes to this many epochs")
    parser.add_argument("--max-examples", type=int, help="train on this many examples only")
    parser.add_argument("--keep", metavar="DIR", help="keep the run folders in DIR")
    args = parser.parse_args(argv)
    results = []
    for name in args.data.split(","):
        result = run_recipe(name.strip(), args.epochs, args.max_examples, args.keep)
        print(table_row(result))
        results.append(result)
    write_results(results)


if __name__ == "__main__":
    main()
