"""Sequential: a stack of layers with Keras' compile / fit / evaluate / predict / summary / save.

Training is reproducible: every epoch draws its shuffling order, augmentation and dropout masks
from generators seeded by (seed, epoch), so a run resumed at epoch k replays exactly what an
uninterrupted run would have done, with the plain layers or with an engine.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minicnn.backend import get_array_module, get_backend, is_gpu_array, to_device, to_numpy
from minicnn.callbacks import History
from minicnn.inputs import as_images, as_labels, check_count
from minicnn.layers import LAYER_TYPES, Dropout, Layer
from minicnn.losses import LOSS_NAMES, SoftmaxCrossEntropy, softmax
from minicnn.optimizers import OPTIMIZER_NAMES, OPTIMIZER_TYPES
from minicnn.serialization import ModelFileError, read_archive, write_archive


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite. Raised before the optimiser step, so the
    weights are those after the last good step; `epoch` and `batch` (1-based) say where."""

    def __init__(self, loss: float, epoch: int | None = None, batch: int | None = None) -> None:
        where = f" at epoch {epoch}, batch {batch}" if epoch is not None else ""
        super().__init__(
            f"training loss became {loss}{where}: training stopped before the weights were "
            "updated. The learning rate may be too high, or the input contains NaN/inf values."
        )
        self.loss, self.epoch, self.batch = loss, epoch, batch


def _snake_case(name: str) -> str:
    """Keras-style default layer names: ReLU -> re_lu, MaxPool2D -> max_pool2d."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    return words.replace("2_d", "2d")


def class_indices(labels):
    """(N,) integer labels or (N, K) one-hot -> (N,) integer labels."""
    return labels if labels.ndim == 1 else labels.argmax(axis=1)


class Sequential:
    """A linear stack of layers, built at construction for samples of `input_shape`.

    Args:
        layers: the layers, first to last; the last one outputs the logits (N, K).
        input_shape: one sample's shape, NCHW without the batch axis (default (1, 28, 28)).
        seed: seed of the weight initialisation (None: fresh random weights).
        dtype: parameter and activation dtype (float32 for training, float64 for checks).

    By default the model runs its plain layers, the code the course teaches (on NumPy or
    CuPy). `model.use_engine(CPUEngine())` runs the same layers faster on the CPU.
    """

    def __init__(
        self, layers, input_shape=(1, 28, 28), seed: int | None = None, dtype="float32"
    ) -> None:
        self.layers: list[Layer] = list(layers)
        if not self.layers:
            raise ValueError("Sequential needs at least one layer")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dtype = np.dtype(dtype)
        self.optimizer = None
        self.loss = None
        self.engine = None  # None: the plain layers; see use_engine
        self.stop_training = False
        self.history: History | None = None  # the History of the latest fit()
        self.metadata: dict = {}  # user metadata, saved and loaded with the model
        counts: dict[str, int] = {}
        rng = np.random.default_rng(seed)
        shape = self.input_shape
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes minicnn layers, got {type(layer).__name__}")
            base = _snake_case(type(layer).__name__)
            counts[base] = counts.get(base, 0) + 1
            layer.name = base if counts[base] == 1 else f"{base}_{counts[base] - 1}"
            if not layer.built:
                layer.build(shape, rng=rng, dtype=self.dtype)
            elif tuple(layer.input_shape) != shape:
                raise ValueError(
                    f"{layer.name} was built for input {layer.input_shape}, but receives {shape}"
                )
            shape = layer.output_shape
        self.output_shape = shape

    # -- set-up ---------------------------------------------------------------------------
    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=None):
        """Choose the optimiser and the loss, as objects or by Keras' names.

        optimizer: an Optimizer, or "adam" / "sgd" (with their default settings).
        loss: a SoftmaxCrossEntropy, or one of LOSS_NAMES. The last layer outputs logits, so
            Keras' "sparse_categorical_crossentropy" and "categorical_crossentropy" mean their
            from_logits=True forms; integer labels and one-hot rows both work with either.
        metrics: None or ["accuracy"]: accuracy is always reported.
        """
        self.optimizer = _lookup("optimizer", optimizer, OPTIMIZER_NAMES)
        self.loss = _lookup("loss", loss, LOSS_NAMES)
        for metric in metrics or []:
            if metric not in ("accuracy", "acc"):
                raise ValueError(
                    f"metrics: {metric!r} is not supported; fit and evaluate report 'accuracy'"
                )
        return self

    def use_engine(self, engine) -> Sequential:
        """Run the model with `engine` (e.g. minicnn.CPUEngine()), or with the plain layers when
        None. The layers, params and model files stay the same; the engine's process-wide
        settings (engine.describe()) apply while the model uses it. Returns the model."""
        if engine is not None:
            on_gpu = [name for name, param, _ in self.named_params() if is_gpu_array(param)]
            if on_gpu:
                raise ValueError(
                    f"{type(engine).__name__} runs NumPy arrays, but this model's parameters "
                    "are on a GPU: there the plain layers are the fast path"
                )
            engine.start()
        if self.engine is not None:
            self.engine.stop()
        self.engine = engine
        return self

    def _ensure_compiled(self) -> None:
        if self.optimizer is None or self.loss is None:
            self.compile(self.optimizer or "adam", self.loss or "sparse_categorical_crossentropy")

    # -- the computation ------------------------------------------------------------------
    # --8<-- [start:forward_backward]
    def forward(self, x, training: bool = False):
        """x (N, *input_shape) -> logits (N, K). Each layer keeps what backward needs."""
        if self.engine is not None:
            return self.engine.forward(self.layers, x, training)
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dlogits, input_gradient: bool = True):
        """Back-propagate d(loss)/d(logits) through every layer, filling each layer's grads.
        Returns d(loss)/d(input) (None when input_gradient=False, which lets an engine skip
        the first layer's input gradient)."""
        if self.engine is not None:
            return self.engine.backward(self.layers, dlogits, input_gradient=input_gradient)
        grad = dlogits
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad if input_gradient else None

    # --8<-- [end:forward_backward]

    def input_gradient(self, x, dlogits):
        """The gradient with respect to the input x of sum(logits * dlogits), in inference mode
        (no dropout, BatchNorm's running averages), through the plain layers. With dlogits one
        1 at a class and 0 elsewhere it is that class score's gradient: a saliency map."""
        x = as_images(x, "x", self.input_shape, self.dtype)
        h = to_device(x, self.dtype)
        for layer in self.layers:
            h = layer.forward(h, training=False)
        grad = to_device(np.asarray(to_numpy(dlogits)), self.dtype)
        if tuple(grad.shape) != tuple(h.shape):
            raise ValueError(f"dlogits has shape {tuple(grad.shape)}, the logits {h.shape}")
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return to_numpy(grad)

    def named_params(self):
        """(name, param, grad) for every trainable array; names like "3.W" are stable keys."""
        for i, layer in enumerate(self.layers):
            for key, param in layer.params.items():
                yield f"{i}.{key}", param, layer.grads[key]

    # --8<-- [start:train_step]
    def train_step(self, x, labels) -> tuple[float, int]:
        """One optimiser step on one batch. Returns (mean loss, number of correct predictions).
        A NaN or infinite loss raises NonFiniteLossError before the weights change."""
        logits = self.forward(x, training=True)
        loss = self.loss.forward(logits, labels)
        if not math.isfinite(loss):
            raise NonFiniteLossError(loss)
        self.backward(self.loss.backward(), input_gradient=False)
        self.optimizer.step(self.named_params())
        correct = int((logits.argmax(axis=1) == class_indices(labels)).sum())
        return loss, correct

    # --8<-- [end:train_step]

    # -- training -------------------------------------------------------------------------
    def fit(
        self,
        x,
        y,
        batch_size: int = 128,
        epochs: int = 1,
        validation_data=None,
        callbacks=(),
        augment=None,
        shuffle: bool = True,
        seed: int | None = None,
        verbose: int = 1,
        initial_epoch: int = 0,
    ) -> History:
        """Train for `epochs` epochs (counting from `initial_epoch`, to resume a run).

        Args:
            x: (N, *input_shape) images; y: (N,) class indices or (N, K) one-hot.
            validation_data: (x_val, y_val) evaluated after every epoch.
            callbacks: minicnn.callbacks objects; they see each epoch's logs.
            augment: callable (batch, rng) -> batch applied to training batches only.
            seed: seeds shuffling, augmentation and dropout; None draws a fresh one.
            verbose: 0 silent, 1 a progress bar per epoch and a summary line.

        Returns a History whose `history` dict holds per-epoch lists of loss, accuracy,
        val_loss, val_accuracy and learning_rate (the rate used during that epoch), and whose
        `seconds` are the epoch times.
        """
        self._ensure_compiled()
        x, y = self._examples(x, y, "x", "y")
        if validation_data is not None:
            validation_data = self._examples(*validation_data, "x_val", "y_val")
        check_count("batch_size", batch_size, minimum=1)
        check_count("epochs", epochs, minimum=0)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        callbacks = self._start_training(callbacks)
        for epoch in range(initial_epoch, epochs):
            started = time.perf_counter()
            for callback in callbacks:
                callback.on_epoch_begin(epoch)
            learning_rate = self.optimizer.learning_rate
            logs = self._run_epoch(x, y, batch_size, shuffle, augment, seed, epoch, epochs, verbose)
            if validation_data is not None:
                val = self.evaluate(*validation_data, batch_size=max(batch_size, 256))
                logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
            logs["learning_rate"] = learning_rate
            self._end_epoch(epoch, epochs, logs, time.perf_counter() - started, callbacks, verbose)
            if self.stop_training:
                break
        self.optimizer.finalize_variable_values(self.named_params())  # Keras: EMA weights in
        for callback in callbacks:
            callback.on_train_end()
        return self.history

    def _start_training(self, callbacks) -> list:
        """A new History (as in Keras, callbacks can read the run so far); every callback is
        told about the model and the start."""
        self.stop_training = False
        self.history = History()
        callbacks = [*callbacks, self.history]
        for callback in callbacks:
            callback.set_model(self)
            callback.on_train_begin()
        return callbacks

    def _epoch_generators(self, seed: int, epoch: int):
        """One independent stream per purpose, derived from (seed, epoch): reproducible and
        resumable without saving generator states. Returns (order rng, augmentation rng); the
        Dropout layers get theirs."""
        dropouts = [layer for layer in self.layers if isinstance(layer, Dropout)]
        streams = np.random.SeedSequence([seed, epoch]).spawn(2 + len(dropouts))
        for layer, stream in zip(dropouts, streams[2:], strict=True):
            layer.reseed(np.random.default_rng(stream))
        return np.random.default_rng(streams[0]), np.random.default_rng(streams[1])

    def _run_epoch(self, x, y, batch_size, shuffle, augment, seed, epoch, epochs, verbose):
        """One pass over the training data in batches; returns {"loss", "accuracy"}."""
        order_rng, augment_rng = self._epoch_generators(seed, epoch)
        n = len(x)
        order = order_rng.permutation(n) if shuffle else np.arange(n)
        n_batches = math.ceil(n / batch_size)
        total_loss, total_correct, seen = 0.0, 0, 0
        with tqdm(
            total=n_batches,
            desc=f"Epoch {epoch + 1}/{epochs}",
            unit="batch",
            disable=not verbose,
            leave=False,
            dynamic_ncols=True,
        ) as bar:
            for b in range(n_batches):
                index = order[b * batch_size : (b + 1) * batch_size]
                xb, yb = x[index], y[index]
                if augment is not None:
                    xb = augment(xb, augment_rng)
                try:
                    loss, correct = self.train_step(to_device(xb, self.dtype), to_device(yb))
                except NonFiniteLossError as error:
                    raise NonFiniteLossError(error.loss, epoch + 1, b + 1) from None
                total_loss += loss * len(index)
                total_correct += correct
                seen += len(index)
                bar.update(1)
                bar.set_postfix(
                    loss=f"{total_loss / seen:.4f}", accuracy=f"{total_correct / seen:.4f}"
                )
        return {"loss": total_loss / seen, "accuracy": total_correct / seen}

    def _end_epoch(self, epoch, epochs, logs, seconds, callbacks, verbose) -> None:
        """Record the epoch's time, call the callbacks back, print the summary line."""
        self.history.seconds.append(seconds)
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        if verbose:
            line = " - ".join(
                f"{k}: {v:.3g}" if k == "learning_rate" else f"{k}: {v:.4f}"
                for k, v in logs.items()
            )
            print(f"Epoch {epoch + 1}/{epochs} - {line} - {seconds:.1f}s", flush=True)

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, x, y, batch_size: int = 256) -> dict[str, float]:
        """Mean loss and accuracy over (x, y), in inference mode. Returns {"loss", "accuracy"}."""
        self._ensure_compiled()
        x, y = self._examples(x, y, "x", "y")
        check_count("batch_size", batch_size, minimum=1)
        total_loss, total_correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            xb = to_device(x[start : start + batch_size], self.dtype)
            yb = to_device(y[start : start + batch_size])
            logits = self.forward(xb, training=False)
            total_loss += self.loss.forward(logits, yb) * len(xb)
            total_correct += int((logits.argmax(axis=1) == class_indices(yb)).sum())
        self.loss.cache = None
        return {"loss": total_loss / len(x), "accuracy": total_correct / len(x)}

    def predict_logits(self, x, batch_size: int = 256) -> np.ndarray:
        """The logits (N, K) as a NumPy array, in inference mode."""
        x = as_images(x, "x", self.input_shape, self.dtype, allow_empty=True)
        check_count("batch_size", batch_size, minimum=1)
        out = [
            to_numpy(self.forward(to_device(x[start : start + batch_size], self.dtype)))
            for start in range(0, len(x), batch_size)
        ]
        if not out:
            return np.zeros((0, *self.output_shape), dtype=self.dtype)
        return np.concatenate(out)

    def predict(self, x, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K) as a NumPy array, in inference mode."""
        return softmax(self.predict_logits(x, batch_size))

    def _examples(self, x, y, x_name: str, y_name: str):
        """(x, y) checked against the model (minicnn.inputs); same number of each."""
        x = as_images(x, x_name, self.input_shape, self.dtype)
        y = as_labels(y, y_name, classes=self.output_shape[-1])
        if len(y) != len(x):
            raise ValueError(f"{x_name} has {len(x)} samples but {y_name} has {len(y)} labels")
        return x, y

    # -- weights --------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and state array as NumPy, by stable name ("3.W")."""
        weights = {}
        for i, layer in enumerate(self.layers):
            for key, value in {**layer.params, **layer.state}.items():
                weights[f"{i}.{key}"] = to_numpy(value).copy()
        return weights

    def set_weights(self, weights: dict) -> None:
        """Load arrays named as by get_weights(); shapes and the set of names must match."""
        expected = set(self.get_weights_shapes())
        if set(weights) != expected:
            missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
            raise ValueError(
                f"weights do not match the model: missing {missing}, unexpected {extra}"
            )
        for i, layer in enumerate(self.layers):
            for table in (layer.params, layer.state):
                for key in table:
                    value = np.asarray(weights[f"{i}.{key}"])
                    if value.shape != tuple(table[key].shape):
                        raise ValueError(
                            f"weight {i}.{key} ({layer.name}) has shape {value.shape}, expected {tuple(table[key].shape)}"
                        )
                    # a copy on the device where the layer's array lives, in its dtype
                    xp = get_array_module(table[key])
                    table[key] = xp.array(value.astype(table[key].dtype, copy=False))

    def get_weights_shapes(self) -> dict[str, tuple]:
        return {
            f"{i}.{key}": tuple(value.shape)
            for i, layer in enumerate(self.layers)
            for key, value in {**layer.params, **layer.state}.items()
        }

    def count_params(self) -> int:
        """The number of trainable values (Keras' name)."""
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print) -> str:
        """A Keras-like table: layer (type), output shape, parameter count, and the total."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer in self.layers:
            rows.append(
                (
                    f"{layer.name} ({type(layer).__name__})",
                    str((None, *layer.output_shape)),
                    f"{layer.count_params():,}",
                )
            )
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        rule = "=" * sum(widths)
        body = [f"{r[0]:<{widths[0]}}{r[1]:<{widths[1]}}{r[2]:>{widths[2]}}" for r in rows]
        engine = "plain layers" if self.engine is None else repr(self.engine)
        text = "\n".join(
            [
                'Model: "sequential"',
                rule,
                body[0],
                rule,
                *body[1:],
                rule,
                f"Total params: {self.count_params():,}",
                f"Input shape: {(None, *self.input_shape)}  dtype: {self.dtype}  runs on: {engine}",
            ]
        )
        if print_fn is not None:
            print_fn(text)
        return text

    # -- files ----------------------------------------------------------------------------
    def save(self, path, metadata: dict | None = None, include_optimizer: bool = True) -> Path:
        """Write the model to `path` (.npz) atomically: architecture, weights, the optimiser and
        its state, the loss, and metadata. No pickle (minicnn.serialization has the layout).

        `metadata` (merged over `model.metadata`): a dict whose values are JSON-serialisable or
        NumPy arrays (e.g. a preprocessing matrix). `include_optimizer=False` leaves out the
        optimiser and its state (Adam's two moments are twice the size of the weights): enough
        for prediction, not for resuming training. Returns the path written.
        """
        arrays: dict[str, np.ndarray] = {}
        json_metadata = {}
        for key, value in {**self.metadata, **(metadata or {})}.items():
            if isinstance(value, np.ndarray) or is_gpu_array(value):
                arrays[f"metadata/{key}"] = to_numpy(value)
            else:
                json_metadata[key] = value
        for name, value in self.get_weights().items():
            arrays[f"weights/{name}"] = value
        optimizer = None
        if self.optimizer is not None and include_optimizer:
            optimizer = {
                "type": type(self.optimizer).__name__,
                "config": self.optimizer.get_config(),
            }
            for key, value in self.optimizer.state_dict().items():
                arrays[f"optimizer/{key}"] = value
        manifest = {
            "architecture": {
                "input_shape": list(self.input_shape),
                "dtype": str(self.dtype),
                "layers": [
                    {"type": type(layer).__name__, "config": layer.get_config()}
                    for layer in self.layers
                ],
            },
            "loss": self.loss.get_config() if self.loss is not None else None,
            "optimizer": optimizer,
            "metadata": json_metadata,
        }
        return write_archive(path, manifest, arrays)


def load(path) -> Sequential:
    """Rebuild the model saved at `path` with its weights, optimiser state and metadata, on the
    current backend, running its plain layers (choose an engine with use_engine).

    Raises ModelFileError naming the file and the problem when the file is missing, not a model
    file, truncated, tampered with or inconsistent.
    """
    path = Path(path)
    manifest, arrays = read_archive(path)
    try:
        architecture = manifest["architecture"]
        layers = []
        for i, spec in enumerate(architecture["layers"]):
            cls = LAYER_TYPES.get(spec["type"])
            if cls is None:
                raise ModelFileError(f"{path}: layer {i} has unknown type {spec['type']!r}")
            layers.append(cls(**spec["config"]))
        model = Sequential(
            layers, input_shape=architecture["input_shape"], dtype=architecture["dtype"]
        )
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: invalid architecture in manifest ({error})") from error

    def entries(prefix: str) -> dict:
        return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}

    try:
        model.set_weights(entries("weights/"))
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from error
    optimizer = None
    spec = manifest.get("optimizer")
    if spec is not None:
        cls = OPTIMIZER_TYPES.get(spec.get("type"))
        if cls is None:
            raise ModelFileError(f"{path}: unknown optimizer type {spec.get('type')!r}")
        try:
            optimizer = cls(**spec["config"])
            if entries("optimizer/"):
                optimizer.load_state_dict(entries("optimizer/"), xp=get_backend())
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{path}: invalid optimizer in manifest ({error})") from error
    try:
        loss = SoftmaxCrossEntropy(**(manifest.get("loss") or {}))
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: invalid loss in manifest ({error})") from error
    model.compile(optimizer or "adam", loss)
    model.metadata = {**manifest.get("metadata", {}), **entries("metadata/")}
    return model


def _lookup(kind: str, value, names: dict):
    """An object given as itself, or by one of `names` (case-insensitive)."""
    if not isinstance(value, str):
        return value
    make = names.get(value.lower())
    if make is None:
        raise ValueError(f"unknown {kind} {value!r}: expected one of {sorted(names)}")
    return make()
