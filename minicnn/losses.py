"""Softmax cross-entropy fused into one layer: stable forward, and the famously simple backward
`(softmax(logits) - target) / N`."""

from __future__ import annotations

from minicnn.backend import get_array_module


def log_softmax(logits):
    """log(softmax(logits)) along the last axis, by log-sum-exp: never overflows."""
    xp = get_array_module(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits):
    """Class probabilities along the last axis (rows sum to 1)."""
    xp = get_array_module(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = xp.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


class SoftmaxCrossEntropy:
    """Mean cross-entropy between softmax(logits) and integer or one-hot labels.

    Args:
        label_smoothing: e in [0, 1); the target becomes (1 - e) * onehot + e / K.

    forward(logits (N, K), labels (N,) ints or (N, K) one-hot) -> mean loss (a Python float);
    backward() -> d(mean loss)/d(logits), shape (N, K), in the logits' dtype.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.cache = None

    def get_config(self) -> dict:
        return {"label_smoothing": self.label_smoothing}

    def targets(self, labels, num_classes: int, dtype):
        """(N,) integer labels or (N, K) one-hot -> (N, K) smoothed target distribution."""
        xp = get_array_module(labels)
        if labels.ndim == 1:
            target = xp.zeros((labels.shape[0], num_classes), dtype=dtype)
            target[xp.arange(labels.shape[0]), labels.astype(xp.int64)] = 1
        elif labels.ndim == 2 and labels.shape[1] == num_classes:
            target = labels.astype(dtype, copy=False)
        else:
            raise ValueError(
                f"labels must be (N,) class indices or (N, {num_classes}) one-hot, got shape {labels.shape}"
            )
        if self.label_smoothing:
            e = self.label_smoothing
            target = target * dtype.type(1 - e) + dtype.type(e / num_classes)
        return target

    def forward(self, logits, labels) -> float:
        if logits.ndim != 2:
            raise ValueError(f"logits must be (N, K), got shape {logits.shape}")
        if labels.shape[0] != logits.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels for {logits.shape[0]} logits")
        target = self.targets(labels, logits.shape[1], logits.dtype)
        log_probs = log_softmax(logits)
        n = logits.shape[0]
        loss = -(target * log_probs).sum() / n
        self.cache = (log_probs, target)
        return float(loss)

    def backward(self):
        """Gradient of the mean loss: (softmax - target) / N, because d(-sum t log p)/dz = p - t
        when the targets of a row sum to 1."""
        if self.cache is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward() called before forward()")
        log_probs, target = self.cache
        self.cache = None
        xp = get_array_module(log_probs)
        grad = xp.exp(log_probs)
        grad -= target
        grad /= log_probs.dtype.type(log_probs.shape[0])
        return grad


# compile(loss=...): the last layer outputs logits, so Keras' cross-entropy names mean their
# from_logits=True forms; SoftmaxCrossEntropy takes integer labels and one-hot rows alike.
LOSS_NAMES = {
    "sparse_categorical_crossentropy": SoftmaxCrossEntropy,
    "categorical_crossentropy": SoftmaxCrossEntropy,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
}
