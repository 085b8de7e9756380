"""Metrics and pictures of a text classifier: accuracy, macro-F1, confusion matrix, attention."""

import numpy as np

from applications.common.errors import UserError
from applications.common.metrics import macro_f1


def check_labels(labels, class_names, source=""):
    """Raise a `UserError` when `labels` hold a class the model was not trained on."""
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        shown = ", ".join(repr(label) for label in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise UserError(
            f"{source or 'The data'} has labels the model was never trained on: {shown}{more}. "
            f"The model knows {', '.join(repr(c) for c in class_names)}; evaluate it on data "
            f"with those labels, or train (or finetune) a model on this data."
        )


def classification_metrics(labels, predictions, class_names):
    """Accuracy, macro-F1, per-class F1 and the confusion matrix.

    Args:
        labels, predictions: sequences of class indices.
        class_names: list of str, the names of the indices.

    Returns:
        A JSON-serializable dict; `macro_f1` is `applications.common.macro_f1` (a class
        absent from `labels` and never predicted is left out of it, and shows 0 in
        `f1_per_class`); `confusion_matrix[i][j]` counts examples of class `i`
        predicted as class `j`.

    Example:
    >>> metrics = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["no", "yes"])
    >>> metrics["accuracy"], round(metrics["macro_f1"], 4), metrics["confusion_matrix"]
    (0.75, 0.7333, [[1, 1], [0, 2]])
    """
    from sklearn.metrics import confusion_matrix
    from sklearn.metrics import f1_score

    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    indices = list(range(len(class_names)))
    per_class = f1_score(labels, predictions, labels=indices, average=None, zero_division=0)
    return {
        "accuracy": float(np.mean(labels == predictions)) if len(labels) else 0.0,
        "macro_f1": macro_f1(labels, predictions, len(class_names)),
        "examples": int(len(labels)),
        "f1_per_class": {name: float(f1) for name, f1 in zip(class_names, per_class)},
        "class_names": list(class_names),
        "confusion_matrix": confusion_matrix(labels, predictions, labels=indices).tolist(),
    }


def plot_confusion_matrix(matrix, class_names, path, title="Confusion matrix"):
    """Save the confusion matrix (rows: true class, columns: predicted class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    size = max(3.5, 0.45 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90 if len(class_names) > 6 else 0)
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if len(class_names) <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                color = "white" if matrix[i, j] > threshold else "black"
                axis.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color, fontsize=8)
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_attention(attention, path, title=""):
    """Save the attention over the tokens of one text as a PNG.

    Top: how much attention each token receives (the last encoder block, averaged over heads
    and over the querying tokens), or the pooling weights of an attention-pooling head.
    Bottom: the last block's full token-to-token attention, averaged over heads.

    Args:
        attention: the dict of `model.attention_over_tokens`.
        path: where to write the PNG.
        title: str. A title, e.g. the prediction.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens = attention["tokens"]
    scores = attention["encoder_scores"][-1].mean(axis=0)  # [T, T], averaged over heads
    if "pooling_weights" in attention:
        received = attention["pooling_weights"].mean(axis=0)  # [T]
        what = "attention of the pooling head"
    else:
        received = scores.mean(axis=0)  # [T]
        what = "attention received (last block, mean over heads and queries)"
    width = min(max(6.0, 0.35 * len(tokens) + 2), 30.0)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(width, width * 0.55 + 2.5), gridspec_kw={"height_ratios": [1, 3]}
    )
    positions = np.arange(len(tokens))
    top.bar(positions, received, color="tab:orange")
    top.set_xticks(positions, tokens, rotation=90, fontsize=8)
    top.set_xlim(-0.5, len(tokens) - 0.5)
    top.set_title(f"{title}\n{what}" if title else what, fontsize=9)
    bottom.imshow(scores, cmap="viridis", aspect="auto")
    bottom.set_xticks(positions, tokens, rotation=90, fontsize=8)
    bottom.set_yticks(positions, tokens, fontsize=8)
    bottom.set_xlabel("attended token")
    bottom.set_ylabel("querying token")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
