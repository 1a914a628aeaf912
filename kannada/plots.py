"""Figures of a run: training curves, confusion matrices and a gallery of mistakes.

Uses matplotlib's object API (Figure + Agg canvas), so no window opens and no pyplot state leaks.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.ticker import MaxNLocator

from minicnn.files import atomic_write

_DPI = 110
# Kannada digits U+0CE6..U+0CEF map to 0..9.
_KANNADA_TO_ARABIC = {0x0CE6 + k: str(k) for k in range(10)}


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Render `fig` to a PNG at `path`, atomically."""
    FigureCanvasAgg(fig)  # attach an Agg canvas: rendering never depends on the global backend
    with atomic_write(path, "wb") as file:
        fig.savefig(file, format="png", dpi=_DPI)
    return Path(path)


# ---------------------------------------------------------------- fonts


@functools.cache
def _characters_in_font(font_path: str) -> frozenset[int]:
    """The code points a font file has glyphs for (empty if it cannot be read)."""
    try:
        return frozenset(FT2Font(font_path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def _default_font_characters() -> frozenset[int]:
    """The code points of the font matplotlib draws text with by default."""
    path = font_manager.findfont(font_manager.FontProperties(), fallback_to_default=True)
    return _characters_in_font(path)


def _other_font_for(needed: set[int]) -> str | None:
    """The family of an installed font that has glyphs for every code point in `needed`."""
    for entry in font_manager.fontManager.ttflist:
        # matplotlib ships "Last Resort", which maps every character to a placeholder box:
        # having an entry for a character is not the same as drawing it.
        if entry.name.startswith("Last Resort"):
            continue
        if needed <= _characters_in_font(entry.fname):
            return entry.name
    return None


def display_class_names(class_names: Sequence[str]) -> tuple[list[str], str | None]:
    """Class names as they can be drawn here, and the font family to draw them with.

    Returns (names, None) when the default font draws them, (names, family) when only
    another installed font does. If no font can (e.g. Kannada numerals with only DejaVu
    Sans installed), characters the default font lacks are dropped and a name left empty
    becomes its Arabic digit: "೦ 0" -> "0", "೦" -> "0"; returns (those names, None).
    """
    names = [str(name) for name in class_names]
    needed = {ord(c) for c in "".join(names) if not c.isspace()}
    drawable = _default_font_characters()
    if needed <= drawable:
        return names, None
    family = _other_font_for(needed)
    if family is not None:
        return names, family
    shown = []
    for name in names:
        kept = " ".join("".join(c for c in name if ord(c) in drawable).split())
        shown.append(kept or name.translate(_KANNADA_TO_ARABIC))
    return shown, None


# ---------------------------------------------------------------- history


def _plot_curves(ax: Axes, history: Mapping[str, Sequence[float]], key: str) -> None:
    """Draw history[key] and history["val_" + key] against epochs 1..E on `ax`."""
    drawn = False
    for name, style in ((key, "-o"), (f"val_{key}", "-s")):
        values = history.get(name)
        if values is not None and len(values):
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, np.asarray(values, dtype=float), style, markersize=3, label=name)
            drawn = True
    if not drawn:
        ax.text(0.5, 0.5, f"no {key} recorded", ha="center", va="center", transform=ax.transAxes)
    # Mark the epochs whose learning rate differs from the epoch before (a scheduler's step).
    lr = np.asarray(history.get("learning_rate", []), dtype=float)
    changes = np.flatnonzero(lr[1:] != lr[:-1]) + 1 if drawn and lr.size > 1 else []
    for i, index in enumerate(changes):
        ax.axvline(
            index + 1,
            color="grey",
            linestyle=":",
            linewidth=1,
            label="learning rate changed" if i == 0 else None,
        )
        ax.annotate(
            f"lr {lr[index]:.3g}",
            xy=(index + 1, 1.0),
            xycoords=ax.get_xaxis_transform(),
            xytext=(2, -3),
            textcoords="offset points",
            rotation=90,
            va="top",
            ha="left",
            fontsize=7,
            color="grey",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend()


def plot_history(
    history: Mapping[str, Sequence[float]], out_dir: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Write `accuracy.png` and `loss.png` in `out_dir` from a Keras-style history.

    history: lists with one value per epoch under "accuracy", "loss" and, when validated,
    "val_accuracy", "val_loss"; an optional "learning_rate" list marks its changes.
    Returns the two paths (accuracy, loss).
    """
    out_dir = Path(out_dir)
    paths = []
    for key in ("accuracy", "loss"):
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.add_subplot()
        _plot_curves(ax, history, key)
        ax.set_title(f"{key} per epoch")
        paths.append(_save(fig, out_dir / f"{key}.png"))
    return paths[0], paths[1]


# ---------------------------------------------------------------- confusion matrix


def _draw_matrix(
    fig: Figure,
    ax: Axes,
    values: np.ndarray,
    cell_text: list[list[str]],
    names: list[str],
    family: str | None,
    title: str,
    vmax: float | None,
) -> None:
    """One annotated heat map: rows true class, columns predicted class, colours 0..vmax."""
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(names))
    font = {"fontfamily": family} if family else {}
    ax.set_xticks(ticks, names, **font)
    ax.set_yticks(ticks, names, **font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    # Dark text on light cells, white text on dark ones.
    top = vmax if vmax is not None else values.max()
    threshold = top / 2 if top > 0 else 1
    for (row, col), text in np.ndenumerate(np.array(cell_text, dtype=object)):
        color = "white" if values[row, col] > threshold else "black"
        ax.text(col, row, text, ha="center", va="center", fontsize=7, color=color)


def plot_confusion_matrix(
    cm: Any,
    path: str | os.PathLike[str],
    title: str,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write a two-panel figure of a (K, K) confusion matrix (rows true) to `path`.

    Left: counts. Right: each row divided by its total (the diagonal is recall per class).
    class_names: K tick labels, default "0".."K-1"; labels the fonts here cannot draw
    (Kannada numerals without a Kannada font) fall back to Arabic digits, see
    `display_class_names`.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"{path}: expected a square (K, K) confusion matrix, found {cm.shape}")
    k = cm.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else list(class_names)
    if len(names) != k:
        raise ValueError(f"{path}: expected {k} class names, found {len(names)}")
    names, family = display_class_names(names)
    totals = cm.sum(axis=1, keepdims=True)
    # A class absent from y_true gets a row of zeros rather than NaN.
    normalised = np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)

    fig = Figure(figsize=(13, 5.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    counts = [[str(int(v)) for v in row] for row in cm]
    _draw_matrix(fig, left, cm.astype(float), counts, names, family, "counts", vmax=None)
    fractions = [[f"{v:.2f}" for v in row] for row in normalised]
    _draw_matrix(
        fig, right, normalised, fractions, names, family, "row-normalised (recall)", vmax=1.0
    )
    fig.suptitle(title)
    return _save(fig, path)


# ---------------------------------------------------------------- mistakes


def plot_misclassified(
    images: Any,
    y_true: Any,
    y_pred: Any,
    probs: Any,
    path: str | os.PathLike[str],
    max_images: int = 36,
) -> Path:
    """Write a grid of misclassified images, the most confident mistakes first.

    images: (N, 28, 28) or (N, 1, 28, 28), floats in [0, 1] or uint8 in 0..255.
    y_true, y_pred: (N,) ints. probs: (N, K) probabilities or None (then no percentage).
    Each tile is titled "true 3 / pred 7 (92%)". With no mistakes the figure says so.
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if images.ndim != 3 or not (len(images) == len(y_true) == len(y_pred)):
        raise ValueError(
            f"{path}: expected images (N, 28, 28) or (N, 1, 28, 28) and N labels, found "
            f"images {images.shape}, y_true {y_true.shape}, y_pred {y_pred.shape}"
        )
    wrong = np.flatnonzero(y_true != y_pred)
    confidence = None
    if probs is not None:
        probs = np.asarray(probs)
        confidence = probs[np.arange(len(y_pred)), y_pred]
        # Stable sort, so equally confident mistakes keep their data order.
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    shown = wrong[:max_images]

    if shown.size == 0:
        fig = Figure(figsize=(5, 2), layout="constrained")
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=14)
        return _save(fig, path)

    cols = math.ceil(math.sqrt(shown.size))
    rows = math.ceil(shown.size / cols)
    # A fixed layout: constrained layout costs seconds for 36 axes and gains nothing here.
    width, height = max(1.6 * cols, 4.0), 1.8 * rows + 0.4
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=1 - 0.6 / height, wspace=0.08, hspace=0.3
    )
    top = 255 if np.issubdtype(images.dtype, np.integer) else 1.0
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, shown, strict=False):  # spare axes stay blank
        # Ink is bright in the data; drawing it dark on white reads like handwriting.
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=top)
        title = f"true {y_true[i]} / pred {y_pred[i]}"
        if confidence is not None:
            title += f" ({confidence[i]:.0%})"
        # Text in axes coordinates rather than set_title: much cheaper to lay out.
        ax.text(0.5, 1.02, title, transform=ax.transAxes, ha="center", va="bottom", fontsize=7)
    fig.suptitle(f"{wrong.size} misclassified of {len(y_true)} (showing {shown.size})")
    return _save(fig, path)


def plot_reliability(
    tables: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str], title: str
) -> Path:
    """A reliability diagram: for each confidence bin, the accuracy of the predictions in it
    against their mean confidence (kannada.calibration.reliability tables), one curve per
    label ("validation, T = 1", ...); a calibrated model lies on the diagonal."""
    fig = Figure(figsize=(5.5, 5.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for (label, table), style in zip(tables.items(), ("-o", "-s", "--o", "--s"), strict=False):
        used = np.asarray(table["count"]) > 0
        ax.plot(
            np.asarray(table["confidence"])[used],
            np.asarray(table["accuracy"])[used],
            style,
            markersize=3,
            label=label,
        )
    ax.set_xlabel("confidence (mean of the bin)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)
