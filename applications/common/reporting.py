"""Showing results: metric tables, the history CSV, learning curves."""

import csv
import sys
from pathlib import Path


def format_value(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def scalar_items(results):
    """The entries of a results dict that fit in a table (numbers and strings)."""
    return [
        (k, v) for k, v in results.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
    ]


def print_table(results, file=None):
    """Print the scalar entries of `results` as a two-column table.

    Example:
    >>> print_table({"accuracy": 0.98125, "examples": 360})
    metric    value
    --------  ------
    accuracy  0.9812
    examples  360
    """
    file = file or sys.stdout
    rows = [(str(k), format_value(v)) for k, v in scalar_items(results)]
    if not rows:
        return
    width = max(len("metric"), *(len(k) for k, _ in rows))
    value_width = max(len("value"), *(len(v) for _, v in rows))
    print(f"{'metric':<{width}}  {'value'}".rstrip(), file=file)
    print(f"{'-' * width}  {'-' * value_width}", file=file)
    for key, value in rows:
        print(f"{key:<{width}}  {value}", file=file)


def read_history(path):
    """The rows of a history CSV as dicts of floats, `epoch` an int (`[]` when there is none)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    for row in rows:
        row["epoch"] = int(row.get("epoch", 0))
    return rows


def plot_learning_curves(history, path):
    """Save one panel per metric (training and validation) against epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in dict.fromkeys(k for row in history for k in row)
             if not k.startswith("val_") and k not in ("epoch", "seconds")]
    if not names:
        return None
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for axis, name in zip(axes[0], names):
        epochs = [int(row["epoch"]) + 1 for row in history if name in row]
        axis.plot(epochs, [row[name] for row in history if name in row], label="training")
        validation = [(int(row["epoch"]) + 1, row[f"val_{name}"]) for row in history if f"val_{name}" in row]
        if validation:
            axis.plot(*zip(*validation), label="validation")
            axis.legend()
        axis.set_xlabel("epoch")
        axis.set_title(name.replace("_", " "))
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
