"""Metrics that several applications report, computed one way for all of them."""

import numpy as np


def macro_f1(labels, predictions, num_classes):
    """The mean F1 over the classes a model knows, leaving out a class whose F1 is undefined.

    A class's F1 is `2 TP / (2 TP + FP + FN)`. It is undefined (0 / 0) only for a
    class with no example in `labels` that is never predicted either: the model is
    neither right nor wrong about it, so it is left out of the mean rather than
    counted as 0 (which would keep a perfect classifier below 1 on data that lacks
    a class). A class present but never predicted, or predicted but absent, counts
    0. That is scikit-learn's `f1_score(labels, predictions, average="macro")`
    (the classes seen in either), computed here with `labels=range(num_classes),
    zero_division=np.nan`.

    Args:
        labels: sequence of int. The true class indices, in `[0, num_classes)`.
        predictions: sequence of int. The predicted class indices.
        num_classes: int. How many classes the model knows.

    Returns:
        float; NaN when no class has an F1 (no examples).

    Example:
    >>> # Class 0: F1 2/3 (1 of 2 found), class 1: 2/3 (1 of 2 right); class 2: absent, left out.
    >>> round(macro_f1([0, 0, 1], [0, 1, 1], num_classes=3), 4)
    0.6667
    """
    from sklearn.metrics import f1_score

    labels, predictions = np.asarray(labels, dtype="int64"), np.asarray(predictions, dtype="int64")
    if len(labels) == 0:
        return float("nan")
    # zero_division=NaN leaves the 0 / 0 classes out of the average.
    return float(f1_score(labels, predictions, labels=range(num_classes), average="macro",
                          zero_division=np.nan))
