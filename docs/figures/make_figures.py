"""Make every figure of the course from the real minicnn and kannada code, with one command:

    python docs/figures/make_figures.py [--only NAME ...] [--data-dir DIR] [--run DIR]

Figures that show no dataset image are written next to this script and committed. Figures made
from Kannada-MNIST (digits, augmentation, ZCA, the training run) go to docs/figures/data/, which
git ignores: the dataset, pictures of its digits included, is never committed. Without the real
data they are made from the course's synthetic stand-in (docs/course.py) and say so.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURES_DIR = Path(__file__).resolve().parent
DATA_FIGURES = FIGURES_DIR / "data"  # gitignored
sys.path.insert(0, str(FIGURES_DIR.parent))  # docs/, for course.py

import course  # noqa: E402

from kannada.augment import Augmenter, save_examples_figure  # noqa: E402
from kannada.data import load_dataset  # noqa: E402
from kannada.drawing import centre_in_frame, crop_to_ink, fit_to_box, ink_map  # noqa: E402
from kannada.preprocess import scale_images  # noqa: E402
from kannada.zca import ZCA  # noqa: E402
from minicnn import SGD, Adam, Dense, ReduceLROnPlateau, ReLU, SoftmaxCrossEntropy  # noqa: E402
from minicnn.gradcheck import numerical_gradient, relative_error  # noqa: E402
from minicnn.layers.im2col import im2col  # noqa: E402
from minicnn.losses import softmax  # noqa: E402

# name -> (function, files it writes relative to docs/figures/, needs the dataset)
FIGURES: dict[str, tuple[Callable, tuple[str, ...], bool]] = {}
RUN_FILES = (
    "accuracy.png",
    "loss.png",
    "confusion_matrix_dig.png",
    "misclassified_dig.png",
)


def figure(name: str, *outputs: str, needs_data: bool = False):
    """Register a figure function under `name`; it writes `outputs` (paths under figures/)."""

    def register(function: Callable) -> Callable:
        FIGURES[name] = (function, outputs, needs_data)
        return function

    return register


def figure_paths() -> set[str]:
    """Every file the script makes, as a page links it: "figures/im2col.png", ..."""
    return {f"figures/{output}" for _, outputs, _ in FIGURES.values() for output in outputs}


def save(fig: Figure, relative: str) -> Path:
    """Render `fig` to docs/figures/<relative> (PNG)."""
    path = FIGURES_DIR / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    print(f"wrote {path.relative_to(FIGURES_DIR.parent.parent)}")
    return path


# ---------------------------------------------------------------- no dataset needed


@figure("im2col", "im2col.png")
def im2col_picture(_) -> None:
    """A 4x4 image (pixels numbered 0..15), its four 3x3 windows, and the (4, 9) col matrix."""
    image = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)  # (N, C, H, W)
    col = im2col(image, (3, 3), (1, 1), ((0, 0), (0, 0)))  # (4, 9): no padding
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1, 2.2])
    left.imshow(np.zeros((4, 4)), cmap="Greys", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(image[0, 0]):
        left.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=12)
    for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        inset = 0.08 * (k + 1)  # nested outlines, so overlapping windows stay visible
        left.add_patch(
            _rectangle((j - 0.5 + inset, i - 0.5 + inset), 3 - 2 * inset, 3 - 2 * inset, colours[k])
        )
    left.set_title(
        "input x: one 4x4 channel\nwindows of the output pixels\n(0,0) (0,1) (1,0) (1,1)"
    )
    left.set_xticks([])
    left.set_yticks([])
    right.imshow(np.zeros(col.shape), cmap="Greys", vmin=0, vmax=1, aspect="auto")
    for (r, c), value in np.ndenumerate(col):
        right.text(c, r, f"{value:.0f}", ha="center", va="center", fontsize=12, color=colours[r])
    right.set_yticks(range(4), [f"row {r}: output ({r // 2},{r % 2})" for r in range(4)])
    right.set_xticks(range(9), [f"(0,{a},{b})" for a in range(3) for b in range(3)])
    right.set_xlabel("column = (channel, kernel row, kernel column)")
    right.set_title("col = im2col(x): shape (N*OH*OW, C*KH*KW) = (4, 9)")
    save(fig, "im2col.png")


def _rectangle(xy, width, height, colour):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, width, height, fill=False, edgecolor=colour, linewidth=2.5)


@figure("relu_softmax", "relu_softmax.png")
def relu_softmax(_) -> None:
    """ReLU forward and backward; softmax probabilities of logits (z, 1, 0) as z varies."""
    x = np.linspace(-3, 3, 601, dtype=np.float32)[:, None]  # (601, 1): a batch of scalars
    relu = ReLU()
    y = relu.forward(x, training=True)
    dx = relu.backward(np.ones_like(x))
    z = np.linspace(-4, 6, 201, dtype=np.float32)
    logits = np.column_stack([z, np.ones_like(z), np.zeros_like(z)])  # (201, 3)
    probs = softmax(logits)
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(x, y, label="ReLU(x) = max(0, x)")
    left.plot(x, dx, "--", label="gradient: 1 where x > 0, else 0")
    left.set_xlabel("x")
    left.legend()
    left.grid(alpha=0.3)
    for k in range(3):
        right.plot(z, probs[:, k], label=f"p{k}  (logit {['z', '1', '0'][k]})")
    right.set_xlabel("z, the first logit")
    right.set_ylabel("softmax probability")
    right.legend()
    right.grid(alpha=0.3)
    right.set_title("softmax(z, 1, 0): the probabilities always sum to 1")
    save(fig, "relu_softmax.png")


@figure("gradcheck_eps", "gradcheck_eps.png")
def gradcheck_eps(_) -> None:
    """Relative error of a central-difference gradient against the step h, float64 and float32.

    f(x) = mean softmax cross-entropy of Dense(4) applied to x (5, 6); the analytic gradient
    is the layer's backward pass.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 6))
    labels = np.array([0, 1, 2, 3, 1])
    dense64 = Dense(4)
    dense64.build((6,), rng=rng, dtype=np.float64)
    dense32 = Dense(4)
    dense32.build((6,), dtype=np.float32)
    dense32.params = {k: v.astype(np.float32) for k, v in dense64.params.items()}
    loss = SoftmaxCrossEntropy()
    dense64.forward(x, training=True)
    loss.forward(dense64.forward(x, training=True), labels)
    analytic = dense64.backward(loss.backward())

    def f64() -> float:
        return loss.forward(dense64.forward(x), labels)

    def f32() -> float:  # the perturbed float64 x, evaluated in float32
        return loss.forward(dense32.forward(x.astype(np.float32)), labels)

    steps = np.logspace(-12, 0, 37)
    errors = {
        name: [relative_error(analytic, numerical_gradient(f, x, eps=h)) for h in steps]
        for name, f in (("float64", f64), ("float32", f32))
    }
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name, values in errors.items():
        ax.loglog(steps, values, "o-", markersize=3, label=f"f evaluated in {name}")
    ax.axvline(1e-5, color="grey", linestyle=":", label="h = 1e-5 (minicnn's default)")
    ax.set_xlabel("step h of the central difference")
    ax.set_ylabel("relative error vs backward()")
    ax.set_title("Rounding error (small h) against Taylor error (large h)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    save(fig, "gradcheck_eps.png")


@figure("optimizers", "optimizers.png")
def optimizer_paths(_) -> None:
    """Paths of SGD, momentum, Nesterov and Adam on f = (0.1 a^2 + 2 b^2) / 2 from (-8, 1.5)."""
    curvature = np.array([0.1, 2.0])
    setups = {
        "SGD lr 0.9": SGD(learning_rate=0.9),
        "momentum 0.9, lr 0.1": SGD(learning_rate=0.1, momentum=0.9),
        "Nesterov 0.9, lr 0.1": SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
        "Adam lr 0.5": Adam(learning_rate=0.5),
    }
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.add_subplot()
    a, b = np.meshgrid(np.linspace(-9, 2, 200), np.linspace(-2.5, 2.5, 120))
    ax.contour(a, b, 0.5 * (curvature[0] * a**2 + curvature[1] * b**2), levels=15, alpha=0.4)
    for label, optimizer in setups.items():
        theta = np.array([-8.0, 1.5])
        path = [theta.copy()]
        for _ in range(40):
            optimizer.step([("theta", theta, curvature * theta)])  # the gradient of f
            path.append(theta.copy())
        path = np.array(path)
        ax.plot(path[:, 0], path[:, 1], "o-", markersize=2.5, linewidth=1, label=label)
    ax.plot([0], [0], "k*", markersize=12)
    ax.set_xlabel("theta 1 (gentle direction, curvature 0.1)")
    ax.set_ylabel("theta 2 (steep, curvature 2)")
    ax.set_title("40 steps of each optimiser from (-8, 1.5); the minimum is the star")
    ax.legend(loc="lower right")
    save(fig, "optimizers.png")


@figure("lr_schedule", "lr_schedule.png")
def lr_schedule(_) -> None:
    """ReduceLROnPlateau(val_accuracy, factor 0.5, patience 3) on a made-up accuracy curve."""
    rng = np.random.default_rng(3)
    epochs = np.arange(1, 31)
    accuracy = 0.99 - 0.08 * np.exp(-epochs / 3) + rng.normal(0, 0.002, epochs.size)
    model = SimpleNamespace(optimizer=Adam(learning_rate=1e-3))
    schedule = ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=3)
    schedule.set_model(model)
    rates = []
    for epoch, value in enumerate(accuracy):
        rates.append(model.optimizer.learning_rate)
        schedule.on_epoch_end(epoch, {"val_accuracy": float(value)})
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(epochs, accuracy, "o-", markersize=3, color="tab:blue", label="val_accuracy")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_accuracy (made up)", color="tab:blue")
    ax.grid(alpha=0.3)
    rate_axis = ax.twinx()
    rate_axis.step(epochs, rates, where="mid", color="tab:red", label="learning rate")
    rate_axis.set_yscale("log")
    rate_axis.set_ylabel("learning rate used", color="tab:red")
    ax.set_title("ReduceLROnPlateau: halve the rate after 3 epochs without a new best")
    save(fig, "lr_schedule.png")


def sample_drawing() -> np.ndarray:
    """A made-up canvas drawing: RGBA uint8 (420, 420, 4), black strokes on transparent.

    A brush of radius 14 px dabbed along a loop with a tail, drawn off-centre and smaller than
    the canvas, as people draw.
    """
    from PIL import Image, ImageDraw

    canvas = Image.new("RGBA", (420, 420), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    t = np.linspace(-0.4 * np.pi, 1.45 * np.pi, 400)
    loop = np.column_stack([170 + 70 * np.cos(t), 190 - 80 * np.sin(t)])
    tail = np.linspace(loop[-1], loop[-1] + [110, 60], 150)
    for x, y in np.vstack([loop, tail]):
        draw.ellipse([x - 14, y - 14, x + 14, y + 14], fill=(0, 0, 0, 255))
    return np.asarray(canvas)


@figure("drawing_steps", "drawing_steps.png")
def drawing_steps(_) -> None:
    """A drawing through kannada.drawing: ink, crop, 20-pixel box, centred 28x28."""
    from kannada.drawing import open_image

    drawing = sample_drawing()
    ink = ink_map(open_image(drawing))  # (420, 420) in [0, 1]
    cropped = crop_to_ink(ink)
    boxed = fit_to_box(cropped)
    centred = centre_in_frame(boxed)
    panels = [
        (1 - drawing[:, :, 3] / 255, "0. the drawing on the canvas\n420x420 RGBA"),
        (ink, f"1. ink from the alpha channel\n{ink.shape[0]}x{ink.shape[1]}"),
        (cropped, f"2. cropped to the ink\n{cropped.shape[0]}x{cropped.shape[1]}"),
        (boxed, f"3. longer side to 20 px\n{boxed.shape[0]}x{boxed.shape[1]}"),
        (centred, "4. in 28x28, centre of mass\nat the centre"),
    ]
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    for ax, (image, title) in zip(fig.subplots(1, 5), panels, strict=True):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    save(fig, "drawing_steps.png")


# ---------------------------------------------------------------- made from the dataset


def _dataset(options):
    folder = options.data_dir or course.data_dir()
    dataset = load_dataset(folder)
    note = "" if course.real_data_dir() or options.data_dir else " (synthetic stand-in)"
    return dataset, note


@figure("digits", "data/digits.png", needs_data=True)
def digits(options) -> None:
    """Five training digits and three Dig-MNIST digits of every class."""
    dataset, note = _dataset(options)
    fig = Figure(figsize=(9, 7.6), layout="constrained")
    parts = [("train", dataset.train, 5), ("Dig-MNIST", dataset.dig, 3)]
    rows = sum(count for _, split, count in parts if split is not None)
    axes = fig.subplots(rows, 10)
    row = 0
    for name, split, count in parts:
        if split is None:
            continue
        for k in range(10):
            chosen = np.flatnonzero(split.labels == k)[
                :: max(1, (split.labels == k).sum() // count)
            ]
            for r, index in enumerate(chosen[:count]):
                ax = axes[row + r, k]
                ax.imshow(split.images[index], cmap="gray", vmin=0, vmax=255)
                if r == 0:
                    ax.set_title(str(k))
        axes[row, 0].set_ylabel(name)
        row += count
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Kannada digits 0-9: train (top) and Dig-MNIST (bottom){note}")
    save(fig, "data/digits.png")


@figure("augmentation", "data/augmentation.png", needs_data=True)
def augmentation(options) -> None:
    """kannada.augment.save_examples_figure: 8 digits, each with 7 random augmentations."""
    dataset, _ = _dataset(options)
    path = DATA_FIGURES / "augmentation.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = dataset.train.labels
    first_of_class = [np.flatnonzero(labels == k)[0] for k in range(8)]  # digits 0..7
    examples = scale_images(dataset.train.images[first_of_class])
    save_examples_figure(examples, Augmenter(), path, np.random.default_rng(0))
    print(f"wrote {path.relative_to(FIGURES_DIR.parent.parent)}")


def _zca_sample(options, n: int = 20000):
    """About n training digits spread over the file, (n, 1, 28, 28) in [0, 1]; labels (n,)."""
    dataset, note = _dataset(options)
    step = max(1, len(dataset.train) // n)
    x = scale_images(dataset.train.images[::step])
    return x, dataset.train.labels[::step], note


@figure("zca_digits", "data/zca_digits.png", needs_data=True)
def zca_digits(options) -> None:
    """Eight digits before and after ZCA whitening (epsilon 0.1 and 0.01)."""
    x, labels, note = _zca_sample(options)
    shown = x[[np.flatnonzero(labels == k)[0] for k in range(8)]]  # digits 0..7
    rows = [("scaled to [0, 1]", shown)]
    for epsilon in (0.1, 0.01):
        rows.append((f"ZCA, epsilon {epsilon}", ZCA(epsilon).fit(x).transform(shown)))
    fig = Figure(figsize=(9, 3.9), layout="constrained")
    axes = fig.subplots(len(rows), len(shown))
    for r, (name, images) in enumerate(rows):
        for c, image in enumerate(images):
            limit = np.abs(image).max()
            cmap, low = ("gray", 0) if r == 0 else ("RdBu_r", -limit)
            axes[r, c].imshow(image[0], cmap=cmap, vmin=low, vmax=limit)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(f"ZCA keeps digits digit-like and sharpens their edges{note}")
    save(fig, "data/zca_digits.png")


@figure("zca_spectrum", "data/zca_spectrum.png", needs_data=True)
def zca_spectrum(options) -> None:
    """Eigenvalues of the pixel covariance and the share of variance they hold."""
    x, _, note = _zca_sample(options)
    flat = x.reshape(len(x), -1).astype(np.float64)
    eigenvalues = np.linalg.eigvalsh(np.cov(flat, rowvar=False, bias=True))[::-1]  # descending
    eigenvalues = np.clip(eigenvalues, 1e-12, None)
    held = np.cumsum(eigenvalues) / eigenvalues.sum()
    rank = np.arange(1, eigenvalues.size + 1)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.semilogy(rank, eigenvalues)
    for epsilon, style in ((0.1, "--"), (0.01, ":")):
        above = int((eigenvalues > epsilon).sum())
        left.axhline(
            epsilon, color="grey", linestyle=style, label=f"epsilon {epsilon}: {above} above"
        )
    left.set_ylim(1e-7, None)
    left.set_xlabel("eigenvalue rank")
    left.set_ylabel("variance along the direction")
    left.legend()
    left.grid(alpha=0.3)
    right.plot(rank, held)
    right.set_xlabel("number of directions")
    right.set_ylabel("share of the total variance")
    right.grid(alpha=0.3)
    fig.suptitle(f"Pixel covariance of {len(x)} training digits (784 directions){note}")
    save(fig, "data/zca_spectrum.png")


@figure("training_run", *(f"data/run/{name}" for name in RUN_FILES), needs_data=True)
def training_run(options) -> None:
    """Curves and confusion matrices of a kannada.train run: --run DIR, else a short run here."""
    from kannada.train import main as train

    target = DATA_FIGURES / "run"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(options.run) if options.run else Path(scratch) / "short"
        if not options.run:
            folder = options.data_dir or course.data_dir()
            argv = ["--data-dir", str(folder), "--limit", str(options.limit)]
            argv += ["--epochs", str(options.epochs), "--out", scratch, "--name", "short"]
            if train([*argv, "--quiet"]) != 0:
                raise SystemExit("the short training run failed (see above)")
        for name in RUN_FILES:
            shutil.copyfile(run_dir / name, target / name)
            print(f"wrote {(target / name).relative_to(FIGURES_DIR.parent.parent)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="make only these")
    parser.add_argument("--data-dir", help="Kannada-MNIST folder (default: found by course.py)")
    parser.add_argument("--run", help="a finished kannada.train run folder to take curves from")
    parser.add_argument("--limit", type=int, default=4000, help="rows of the short run")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the short run")
    options = parser.parse_args(argv)
    if not options.data_dir and course.real_data_dir() is None:
        print("note: Kannada-MNIST not found; data figures use the synthetic stand-in")
    for name in options.only or FIGURES:
        FIGURES[name][0](options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
