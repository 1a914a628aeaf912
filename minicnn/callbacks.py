"""Callbacks: code that runs at the end of each epoch with that epoch's logs (Keras semantics).

`logs` is a dict such as {"loss": .., "accuracy": .., "val_loss": .., "val_accuracy": ..,
"learning_rate": ..}. A callback may set `model.stop_training = True` or change
`model.optimizer.learning_rate`. Callbacks keep their counters from one fit() to the next (a
resumed run continues where it stopped): use a new callback object for a new, independent
training run.
"""

from __future__ import annotations

import math
import warnings


class Callback:
    """Base class: override the hooks you need. `self.model` is set by fit()."""

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass


def _improvement_test(monitor: str, mode: str, min_delta: float):
    """Keras' rule: "auto" maximises metrics whose name contains "acc", minimises the rest.

    Returns (is_better(current, best), initial best).
    """
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "max" or (mode == "auto" and "acc" in monitor):
        return (lambda current, best: current > best + min_delta), -math.inf
    return (lambda current, best: current < best - min_delta), math.inf


def _monitored_value(callback_name: str, monitor: str, logs: dict):
    value = logs.get(monitor)
    if value is None:
        warnings.warn(
            f"{callback_name}: metric {monitor!r} is not in the logs (available: {sorted(logs)}); skipped",
            stacklevel=3,
        )
    return value


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` stops improving.

    Keras semantics: an epoch improves when it beats the best so far by more than `min_delta`
    (absolute); after `patience` epochs without improvement the rate is reduced (never below
    `min_lr`), then `cooldown` epochs pass before epochs count as waiting again.
    """

    def __init__(
        self,
        monitor: str = "val_accuracy",
        factor: float = 0.5,
        patience: int = 3,
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        mode: str = "auto",
        verbose: int = 0,
    ) -> None:
        if factor >= 1.0 or factor <= 0.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_delta = abs(float(min_delta))
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.verbose = verbose
        self.is_better, self.best = _improvement_test(monitor, mode, self.min_delta)
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        current = _monitored_value("ReduceLROnPlateau", self.monitor, logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.is_better(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                optimizer = self.model.optimizer
                old_rate = optimizer.learning_rate
                if old_rate > self.min_lr:
                    optimizer.learning_rate = max(old_rate * self.factor, self.min_lr)
                    if self.verbose:
                        print(
                            f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {optimizer.learning_rate:.6g}."
                        )
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    # The callback's counters are part of a checkpoint: a resumed run reduces at the same epochs.
    def get_state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state: dict) -> None:
        self.best = float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])


class EarlyStopping(Callback):
    """Stop training when `monitor` has not improved for `patience` epochs (Keras semantics).

    With `restore_best_weights`, the weights of the best epoch are put back at the end.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
        verbose: int = 0,
    ) -> None:
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.restore_best_weights = restore_best_weights
        self.verbose = verbose
        self.is_better, self.best = _improvement_test(monitor, mode, self.min_delta)
        self.wait = 0
        self.best_weights = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        current = _monitored_value("EarlyStopping", self.monitor, logs)
        if current is None:
            return
        if self.is_better(current, self.best):
            self.best = current
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch
            if self.verbose:
                print(
                    f"\nEpoch {epoch + 1}: early stopping ({self.monitor} did not improve for {self.wait} epochs)"
                )

    def on_train_end(self, logs=None) -> None:
        if (
            self.restore_best_weights
            and self.best_weights is not None
            and self.stopped_epoch is not None
        ):
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (model.save: atomic, with optimiser state) after each epoch.

    `filepath` may contain "{epoch}" (1-based) and any log key, e.g. "ckpt-{epoch:02d}.npz".
    With `save_best_only`, only epochs that improve `monitor` are saved.
    """

    def __init__(
        self,
        filepath: str,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        metadata: dict | None = None,
    ) -> None:
        self.filepath = str(filepath)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.metadata = metadata
        self.is_better, self.best = _improvement_test(monitor, mode, 0.0)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.save_best_only:
            current = _monitored_value("ModelCheckpoint", self.monitor, logs)
            if current is None or not self.is_better(current, self.best):
                return
            self.best = current
        self.model.save(self.filepath.format(epoch=epoch + 1, **logs), metadata=self.metadata)


class History(Callback):
    """Records the logs of every epoch: `history.history["val_accuracy"][i]` is epoch i+1's;
    `seconds[i]` is its time (fit records it, validation included)."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.seconds: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
