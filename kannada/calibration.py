"""Honest confidence: temperature scaling, and how to measure calibration.

A network trained with cross-entropy is usually over-confident on new writers: among the
digits it reads with 99% confidence, fewer than 99% are right. Temperature scaling (Guo et
al., "On Calibration of Modern Neural Networks", 2017) divides the logits by one number T,
fitted on held-out data by minimising the negative log-likelihood; T > 1 softens the
probabilities. The predicted digit never changes (the largest logit stays the largest), only
the confidence does.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from minicnn import losses

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al.


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities of logits / temperature, computed in float64."""
    return losses.softmax(np.asarray(logits, dtype=np.float64) / temperature)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean -log p(true digit); probabilities are clipped at 1e-12 so a 0 costs 27.6, not inf."""
    p = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the NLL of softmax(logits / T) on (logits, labels).

    A one-dimensional, smooth problem: searched on log T with Brent's bounded method.
    """
    labels = np.asarray(labels, dtype=np.int64)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(softmax(logits, np.exp(log_t)), labels),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Per confidence bin ((0, 1/bins], ...): how many predictions, their mean confidence and
    their accuracy. The confidence of a prediction is its largest probability."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(which, confidence, minlength=bins) / count
        accuracy = np.bincount(which, correct, minlength=bins) / count
    return {"edges": edges, "count": count, "confidence": mean_confidence, "accuracy": accuracy}


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the gap |accuracy - confidence| of each equal-width confidence bin, weighted by the
    share of predictions in the bin (Guo et al.; 15 bins by default)."""
    table = reliability(probabilities, labels, bins)
    used = table["count"] > 0
    gaps = np.abs(table["accuracy"][used] - table["confidence"][used])
    return float((gaps * table["count"][used]).sum() / len(labels))


def calibration_report(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """NLL and ECE of one labelled split, before (T = 1) and after temperature scaling."""
    labels = np.asarray(labels, dtype=np.int64)
    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "temperature": temperature,
        "ece_bins": ECE_BINS,
        "nll_before": negative_log_likelihood(before, labels),
        "nll_after": negative_log_likelihood(after, labels),
        "ece_before": expected_calibration_error(before, labels),
        "ece_after": expected_calibration_error(after, labels),
    }
