"""Temperature scaling and the calibration measures, on data whose answer is known."""

import numpy as np
import pytest

from kannada.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    softmax,
)


def overconfident(n=20000, true_temperature=2.5, seed=0):
    """Labels drawn from softmax(z / T): a model reporting softmax(z) is over-confident by T."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4, (n, 10))
    probs = softmax(logits, true_temperature)
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


def test_the_fitted_temperature_recovers_the_true_one():
    logits, labels = overconfident()
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)


def test_scaling_lowers_nll_and_ece_and_keeps_every_prediction():
    logits, labels = overconfident()
    report = calibration_report(logits, labels, fit_temperature(logits, labels))
    assert report["nll_after"] < report["nll_before"]
    assert report["ece_after"] < report["ece_before"] / 3 and report["ece_bins"] == 15
    after = softmax(logits, report["temperature"])
    np.testing.assert_array_equal(after.argmax(axis=1), softmax(logits).argmax(axis=1))


def test_ece_by_hand():
    # Two bins used: confidence 0.9 (two predictions, one right) and 0.6 (one, right).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    labels = np.array([0, 1, 1])
    table = reliability(probs, labels, bins=10)
    assert table["count"].sum() == 3 and table["count"][8] == 2 and table["count"][5] == 1
    expected = (2 * abs(0.5 - 0.9) + 1 * abs(1.0 - 0.6)) / 3
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(expected)


def test_a_confidence_of_exactly_one_lands_in_the_last_bin():
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    table = reliability(probs, np.array([0, 0]), bins=15)
    assert table["count"][14] == 1 and table["count"][7] == 1


def test_nll_of_a_certain_wrong_answer_is_large_but_finite():
    assert negative_log_likelihood(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(
        -np.log(1e-12)
    )
