"""Every layer's input and parameter gradients agree with central differences in float64."""

import numpy as np
import pytest

import minicnn as mc
from minicnn.gradcheck import (
    check_layer,
    check_model,
    gradient_errors,
    numerical_gradient,
    relative_error,
)

TOL = 1e-6


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def tie_free_images(shape, seed=0):
    """Distinct values spaced far apart relative to the finite-difference step: no ties in any
    pooling window, so max pooling is differentiable there."""
    rng = np.random.default_rng(seed)
    values = rng.permutation(np.prod(shape)).astype(np.float64) * 0.01
    return values.reshape(shape)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same", 1, 2])
@pytest.mark.parametrize("kernel_size", [3, (2, 3)])
def test_conv2d_gradients(stride, padding, kernel_size):
    x = images((2, 3, 7, 6))  # batch > 1, several channels, odd size
    errors = gradient_errors(mc.Conv2D(4, kernel_size, stride=stride, padding=padding), x)
    assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_gradients_one_channel(stride):
    # One input channel takes im2col's tap-by-tap layout (a transposed view of the buffer).
    x = images((3, 1, 7, 6), seed=3)
    errors = gradient_errors(mc.Conv2D(4, 3, stride=stride, padding="same"), x)
    assert max(errors.values()) <= TOL, errors


def test_conv2d_gradients_1x1_and_large_padding():
    x = images((2, 2, 5, 5), seed=1)
    assert check_layer(mc.Conv2D(3, 1), x) <= TOL
    assert check_layer(mc.Conv2D(3, 3, padding=3), x) <= TOL  # padding >= kernel: the col2im path


@pytest.mark.parametrize("pool_size,stride", [(2, None), (3, 2), (2, 1), ((2, 3), None)])
def test_maxpool_gradients(pool_size, stride):
    x = tie_free_images((2, 3, 7, 7))
    assert check_layer(mc.MaxPool2D(pool_size, stride), x) <= TOL


def test_relu_gradients_away_from_the_kink():
    x = images((3, 2, 5, 5))
    x[np.abs(x) < 0.01] = 0.5  # keep |x| >> eps
    assert check_layer(mc.ReLU(), x) <= TOL


def test_dense_gradients():
    assert check_layer(mc.Dense(7), images((4, 9))) <= TOL


def test_flatten_gradients():
    assert check_layer(mc.Flatten(), images((2, 3, 4, 5))) <= TOL


def test_dropout_gradients_with_a_fixed_mask():
    assert check_layer(mc.Dropout(0.4, seed=3), images((3, 2, 5, 5))) <= TOL


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 7)])
def test_batchnorm_training_gradients(shape):
    layer = mc.BatchNorm()
    x = images(shape, seed=2) * 3 + 1
    layer.build(shape[1:], dtype=np.float64)
    layer.params["gamma"] = np.random.default_rng(5).uniform(0.5, 2.0, shape[1])
    layer.params["beta"] = np.random.default_rng(6).standard_normal(shape[1])
    assert check_layer(layer, x) <= TOL


def test_whole_model_gradients_through_the_loss():
    # (BatchNorm right after a Conv2D would make that conv's bias gradient exactly zero, where
    # the relative error only measures finite-difference noise: hence ReLU before BatchNorm.)
    model = mc.Sequential(
        [
            mc.Conv2D(3, 3, padding="same"),
            mc.ReLU(),
            mc.MaxPool2D(2),
            mc.Conv2D(4, 3, stride=2, padding=1),
            mc.ReLU(),
            mc.BatchNorm(),
            mc.Flatten(),
            mc.Dropout(0.3, seed=0),
            mc.Dense(5),
        ],
        input_shape=(2, 9, 9),
        seed=0,
        dtype="float64",
    )
    model.compile(loss=mc.SoftmaxCrossEntropy(label_smoothing=0.1))
    x = images((3, 2, 9, 9), seed=4)
    labels = np.array([0, 3, 4])
    assert check_model(model, x, labels) <= TOL


def test_loss_gradient_integer_and_onehot_and_smoothing():
    logits = images((5, 4), seed=7)
    labels = np.array([0, 1, 3, 2, 3])
    for smoothing in (0.0, 0.2):
        for target in (labels, np.eye(4)[labels]):
            loss = mc.SoftmaxCrossEntropy(label_smoothing=smoothing)
            loss.forward(logits, target)
            analytic = loss.backward()
            numeric = numerical_gradient(lambda l=loss, t=target: l.forward(logits, t), logits)
            assert relative_error(analytic, numeric) <= TOL


def test_relative_error_definition():
    a = np.array([1.0, -2.0])
    n = np.array([1.0, -2.5])
    assert relative_error(a, n) == pytest.approx(0.5 / 4.5)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_gradcheck_catches_a_wrong_gradient():
    class BrokenDense(mc.Dense):
        def backward(self, dy):
            dx = super().backward(dy)
            self.grads["W"] = self.grads["W"] * 1.01  # 1% off
            return dx

    assert check_layer(BrokenDense(3), images((4, 5))) > 1e-3


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_batchnorm_gradients_in_both_modes(training):
    layer = mc.BatchNorm().build((3, 4, 4))
    rng = np.random.default_rng(2)
    layer.state["running_mean"] = rng.standard_normal(3)
    layer.state["running_var"] = rng.random(3) + 0.5
    assert check_layer(layer, images((5, 3, 4, 4)), training=training) <= TOL


def test_input_gradient_of_a_trained_model_in_inference_mode():
    """model.input_gradient: d(sum(logits * dlogits))/dx with dropout off and BatchNorm on its
    running averages, the saliency the demo draws, against central differences."""
    model = mc.Sequential(
        [
            mc.Conv2D(3, 3, padding="same"),
            mc.BatchNorm(),
            mc.ReLU(),
            mc.MaxPool2D(2),
            mc.Dropout(0.5),
            mc.Flatten(),
            mc.Dense(5),
        ],
        input_shape=(1, 6, 6),
        seed=0,
        dtype="float64",
    )
    bn = model.layers[1]
    bn.state["running_mean"] = np.array([0.1, -0.2, 0.3])
    bn.state["running_var"] = np.array([0.5, 1.5, 2.0])
    x = tie_free_images((2, 1, 6, 6))
    dlogits = np.zeros((2, 5))
    dlogits[[0, 1], [3, 1]] = 1.0  # each image's score of one class
    analytic = model.input_gradient(x, dlogits)

    def score() -> float:
        return float((model.forward(x, training=False) * dlogits).sum())

    numeric = numerical_gradient(score, x)
    assert analytic.shape == x.shape
    assert relative_error(analytic, numeric) <= TOL
    assert np.abs(analytic).max() > 0
