"""The macro-F1 that the image and text classifiers share."""

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from applications.common import macro_f1
from applications.image_classification.evaluation import evaluate_arrays
from applications.text_classification.evaluation import classification_metrics


def test_macro_f1_golden_values():
    # Every class present: class 0 F1 2/3, class 1 1, class 2 2/3 (2 TP / (2 TP + FP + FN)).
    assert macro_f1([0, 1, 2, 2], [0, 1, 2, 1], 3) == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    # Class 2 absent and never predicted: its F1 is 0 / 0, left out of the mean.
    assert macro_f1([0, 0, 1], [0, 1, 1], 3) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert macro_f1([0, 1], [0, 1], 3) == 1.0  # A perfect classifier scores 1 on data lacking a class.
    # Class 2 absent but predicted once: a false positive, F1 0, counted.
    assert macro_f1([0, 0, 1, 1], [0, 2, 1, 1], 3) == pytest.approx((2 / 3 + 1 + 0) / 3)
    # Class 1 present but never predicted: F1 0, counted.
    assert macro_f1([0, 1], [0, 0], 2) == pytest.approx((2 / 3 + 0) / 2)
    assert math.isnan(macro_f1([], [], 3))


def test_macro_f1_is_scikit_learns_over_the_classes_with_an_f1():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 4, 50), rng.integers(0, 5, 50)  # Class 5 of 6 never seen.
    ours = macro_f1(labels, predictions, 6)
    assert ours == pytest.approx(f1_score(labels, predictions, average="macro"))
    assert ours == pytest.approx(f1_score(labels, predictions, labels=range(6), average="macro",
                                          zero_division=np.nan))


class _FixedPredictions:
    """A stand-in model: each 'image' is the index of the class it predicts."""

    def predict(self, images, batch_size=None, verbose=0):
        return np.eye(3)[np.asarray(images)]


@pytest.mark.parametrize("labels, predictions", [
    ([0, 0, 1], [0, 1, 1]),  # Class "c" absent and never predicted.
    ([0, 0, 1, 1], [0, 2, 1, 1]),  # Class "c" absent, predicted once.
])
def test_image_and_text_classifiers_report_the_same_macro_f1(labels, predictions):
    class_names = ["a", "b", "c"]
    image = evaluate_arrays(_FixedPredictions(), np.array(predictions), np.array(labels), class_names)
    text = classification_metrics(labels, predictions, class_names)
    assert image["macro_f1"] == pytest.approx(text["macro_f1"])
    assert image["macro_f1"] == pytest.approx(macro_f1(labels, predictions, 3))
