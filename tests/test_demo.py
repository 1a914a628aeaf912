"""Tests of the web demo (kannada.demo): the handler, the app over HTTP, and a real browser.

The real model comes from $KANNADA_DEMO_MODEL, else the packaged kannada/pretrained/model.npz;
without one, the tests that need it skip. A tiny untrained model serves the message tests.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from kannada.cli import RunError
from kannada.demo import (
    EMPTY_MESSAGE,
    KANNADA_NUMERALS,
    NOTHING_YET,
    PRETRAINED_MODEL,
    DigitReader,
    Reading,
    blocks_html,
    canvas_picture,
    choose_model,
    class_name,
    describe_model,
    looked_html,
    main,
    numerals_html,
    seen_html,
)
from kannada.drawing import prepare_digit
from kannada.inside import conv_blocks, map_grid
from kannada.model import build_model
from kannada.preprocess import Preprocessing

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CANVAS = 420


def real_model_path() -> Path | None:
    """$KANNADA_DEMO_MODEL, else the packaged pretrained model, else None."""
    if os.environ.get("KANNADA_DEMO_MODEL"):
        return Path(os.environ["KANNADA_DEMO_MODEL"])
    return PRETRAINED_MODEL if PRETRAINED_MODEL.is_file() else None


@pytest.fixture(scope="module")
def real_reader() -> DigitReader:
    path = real_model_path()
    if path is None:
        pytest.skip("no trained model: set KANNADA_DEMO_MODEL or ship kannada/pretrained/model.npz")
    return DigitReader.from_file(path)


@pytest.fixture(scope="module")
def cnn_reader() -> DigitReader:
    """The demo's reader around an untrained seed-cnn (no ZCA): the panels' shapes and labels
    without a trained model."""
    return DigitReader(build_model(seed=0), Preprocessing(), "Model: untrained.")


@pytest.fixture(scope="module")
def train_digits():
    """200 (image, label) pairs from the real training set, fixed by a seed."""
    from conftest import NO_REAL_DATA, shared_data_dir  # tests/conftest.py: the real data

    from kannada.data import read_idx

    if shared_data_dir() is None:
        pytest.skip(NO_REAL_DATA)
    folder = shared_data_dir() / "original"
    images = read_idx(folder / "X_kannada_MNIST_train-idx3-ubyte.gz")
    labels = read_idx(folder / "y_kannada_MNIST_train-idx1-ubyte.gz")
    rows = np.random.default_rng(1).choice(len(images), size=200, replace=False)
    return images[rows], labels[rows].astype(np.int64)


def canvas_like(
    digit: np.ndarray, rng: np.random.Generator, style: str, stroke: str
) -> Image.Image:
    """A 28x28 dataset digit drawn as on the demo's 420x420 canvas.

    Upscaled 8-13x, placed anywhere (mostly off-centre), strokes made thinner ("thin") or
    thicker ("thick") by grey morphology, as black ink on a transparent ("rgba") or a white
    ("white") background.
    """
    scale = rng.uniform(8, 13)
    side = round(28 * scale)
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC))
    if stroke == "thin":
        ink = ndimage.grey_erosion(ink, size=round(0.5 * scale))
    elif stroke == "thick":
        ink = ndimage.grey_dilation(ink, size=round(0.8 * scale))
    level = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    top, left = rng.integers(0, CANVAS - side + 1, size=2)
    level[top : top + side, left : left + side] = ink
    if style == "rgba":
        black = np.zeros_like(level)
        return Image.fromarray(np.dstack([black, black, black, level]))
    return Image.fromarray(255 - level).convert("RGB")


def top_label(label) -> str:
    """The winning class name from a Reading label dict (or the message string)."""
    return max(label, key=label.get) if isinstance(label, dict) else label


def html_pictures(text: str) -> list[np.ndarray]:
    """The pictures inside a panel's HTML (its data:image/png URLs), as arrays."""
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data)))) for data in found]


def a_stroke() -> Image.Image:
    """A canvas with one vertical stroke, black on white."""
    stroke = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    stroke[60:360, 190:220] = 255
    return Image.fromarray(255 - stroke)


# -- small pieces -------------------------------------------------------------------------


def test_class_names_pair_the_kannada_numeral_with_the_digit():
    names = [class_name(k) for k in range(10)]
    assert names[3] == "೩ · 3"
    assert [ord(name[0]) for name in names] == list(range(0x0CE6, 0x0CF0))
    assert [name.split(" · ")[1] for name in names] == [str(k) for k in range(10)]


def test_canvas_picture_takes_the_composite_else_the_last_layer():
    a, b, c = object(), object(), object()
    assert canvas_picture({"background": a, "layers": [b], "composite": c}) is c
    assert canvas_picture({"background": a, "layers": [b, None], "composite": None}) is b
    assert canvas_picture({"background": a, "layers": [], "composite": None}) is a
    assert canvas_picture(None) is None
    assert canvas_picture(a) is a


def test_the_shipped_model_unless_model_names_another(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for age, name in enumerate(["new", "old"]):
        (runs / name).mkdir(parents=True)
        (runs / name / "model.npz").write_bytes(b"x")
        os.utime(runs / name / "model.npz", (1e9 - age * 100, 1e9 - age * 100))
    # A newer run does not replace the shipped model: only --model latest picks it.
    assert choose_model(None, runs) == PRETRAINED_MODEL
    assert choose_model("latest", runs) == runs / "new" / "model.npz"
    assert choose_model("other.npz", runs) == Path("other.npz")
    with pytest.raises(RunError, match=r"--model latest: no .*model\.npz here"):
        choose_model("latest", tmp_path / "no-runs")
    monkeypatch.setattr("kannada.demo.PRETRAINED_MODEL", tmp_path / "absent.npz")
    with pytest.raises(RunError, match="installation is incomplete"):
        choose_model(None, runs)


def test_the_page_names_the_model_and_its_accuracy(tiny_model):
    metadata = {"validation_accuracy": 0.9940625, "dig_accuracy": 0.87294921875}
    line = describe_model(PRETRAINED_MODEL, metadata)
    assert line == (
        "Model: the model shipped with kannada (99.41% on writers held out from training, "
        "87.29% on Dig-MNIST)."
    )
    assert "not recorded" in DigitReader.from_file(tiny_model).about
    assert str(tiny_model) in DigitReader.from_file(tiny_model).about
    if PRETRAINED_MODEL.is_file():
        shipped = DigitReader.from_file(PRETRAINED_MODEL).about
        assert "shipped" in shipped and "% on Dig-MNIST" in shipped


def test_main_explains_a_missing_or_broken_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no runs/ here
    assert main(["--model", "latest"]) == 1
    assert "--model latest: no runs/*/model.npz here" in capsys.readouterr().err

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a model")
    assert main(["--model", str(broken)]) == 1
    assert "broken.npz" in capsys.readouterr().err

    picture = tmp_path / "digit.npz"  # a PNG renamed
    Image.new("L", (28, 28)).save(picture, format="PNG")
    assert main(["--model", str(picture)]) == 1
    err = capsys.readouterr().err
    assert "not a minicnn model file" in err and "allow_pickle" not in err


def test_a_port_in_use_is_one_line_naming_port(tiny_model, capsys):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert main(["--model", str(tiny_model), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"python -m kannada.demo: error: --port {port}: the port is in use")
    assert len(err.strip().splitlines()) == 1


# -- the handler --------------------------------------------------------------------------


def test_the_handler_answers_every_input_without_raising(tiny_model, tmp_path):
    reader = DigitReader.from_file(tiny_model)
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    blank = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))

    for empty in (None, blank, {"background": None, "layers": [], "composite": None}):
        [label], [seen], [status], [looked], [blocks] = reader.on_sketches([empty])
        assert (label, seen) == (EMPTY_MESSAGE, "") and "Draw a digit" in status
        assert looked == blocks == f"<p>{NOTHING_YET}</p>"

    # A file that is no picture, from the canvas or the upload: a message, not an error.
    for outputs in (
        reader.on_uploads([{"path": str(bad)}]),
        reader.on_sketches([{"background": None, "layers": [], "composite": {"path": str(bad)}}]),
    ):
        [label], [seen], [status], _, _ = outputs
        assert label == "Unreadable image" and seen == ""
        assert "not an image file" in status

    picture = a_stroke()
    reading = reader.read(picture)
    assert sorted(reading.label) == sorted(class_name(k) for k in range(10))
    assert math.isclose(sum(reading.label.values()), 1, rel_tol=1e-5)
    # What the network sees is exactly its 28x28 input, shown 10 times larger on the page.
    np.testing.assert_array_equal(reading.seen, prepare_digit(picture))
    [shown] = html_pictures(seen_html(reading.seen))
    np.testing.assert_array_equal(shown, reading.seen)
    assert 'width="280"' in seen_html(reading.seen)
    assert reading.status.startswith("Read in ") and "network" in reading.status
    assert "inside" in reading.status


def test_a_batch_is_read_in_order_as_each_picture_alone(cnn_reader):
    rng = np.random.default_rng(0)
    digits = [(rng.random((28, 28)) > 0.8).astype(np.uint8) * 255 for _ in range(2)]
    pictures = [(None, None), (digits[0], None), (b"not a picture", "x.png"), (digits[1], None)]
    readings = cnn_reader.read_all(pictures)
    assert [r.label if isinstance(r.label, str) else "read" for r in readings] == [
        EMPTY_MESSAGE,
        "read",
        "Unreadable image",
        "read",
    ]
    for reading, digit in zip([readings[1], readings[3]], digits, strict=True):
        alone = cnn_reader.read(digit)
        assert reading.label.keys() == alone.label.keys()
        np.testing.assert_allclose(
            list(reading.label.values()), list(alone.label.values()), rtol=1e-5
        )
        # One pass over the batch: its matrix products may round in another order than one
        # digit's, so the last bits can differ.
        scale = np.abs(alone.inside.saliency).max()
        np.testing.assert_allclose(
            reading.inside.saliency, alone.inside.saliency, rtol=1e-4, atol=1e-5 * scale
        )
        assert "2 drawings read together" in reading.status


# -- the panels ---------------------------------------------------------------------------


def test_the_numeral_strip_pairs_each_kannada_numeral_with_its_digit():
    strip = numerals_html()
    cells = re.findall(r">(\S)</div><div>(\d)</div>", strip)
    assert cells == [(numeral, str(k)) for k, numeral in enumerate(KANNADA_NUMERALS)]


def test_the_blocks_panel_names_each_block_and_shows_its_maps(cnn_reader):
    reading = cnn_reader.read(a_stroke())
    panel = blocks_html(reading.inside)
    blocks = conv_blocks(cnn_reader.model)
    headings = re.findall(r"<h4[^>]*>(.*?)</h4>", panel)
    assert headings == [
        f"{block.name}: {c} &times; {h} &times; {w}"
        for block, (c, h, w) in ((block, block.shape) for block in blocks)
    ]
    assert headings[0] == "conv2d + re_lu: 32 &times; 28 &times; 28"
    assert "all 32 channels" in panel and "the 16 of 64 channels most active here" in panel
    pictures = html_pictures(panel)
    assert len(pictures) == 4
    for picture, view in zip(pictures, reading.inside.blocks, strict=True):
        np.testing.assert_array_equal(picture, map_grid(view.maps))
    # Every map of the first block, 8 to a row: 4 rows of 28 x 28 with 1-pixel lines.
    assert pictures[0].shape == (4 * 29 - 1, 8 * 29 - 1)
    assert pictures[2].shape == (2 * 15 - 1, 8 * 15 - 1)  # 16 maps of 14 x 14


def test_the_saliency_panel_explains_the_predicted_class(cnn_reader):
    reading = cnn_reader.read(a_stroke())
    panel = looked_html(reading.seen, reading.inside)
    assert reading.inside.target == int(np.argmax(list(reading.label.values())))
    assert f"the score of {top_label(reading.label)} changes" in panel
    pixelwise, smooth = html_pictures(panel)
    assert pixelwise.shape == smooth.shape == (28, 28, 3)
    assert "pixel by pixel" in panel and "smoothed" in panel
    # A reading without a digit shows the sentence that says what to do.
    empty = Reading(EMPTY_MESSAGE, None, "")
    assert looked_html(None, None) == blocks_html(None) == f"<p>{NOTHING_YET}</p>"
    assert empty.outputs()[1] == ""


def test_the_handler_reads_canvas_drawings_of_real_digits(real_reader, train_digits):
    """200 dataset digits redrawn as canvases: off-centre, thin/thick, RGBA and black on white."""
    images, labels = train_digits
    rng = np.random.default_rng(7)
    styles = [("rgba", "same"), ("white", "thin"), ("rgba", "thick"), ("white", "same")]
    styles += [("rgba", "thin"), ("white", "thick")]
    right = []
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        style, stroke = styles[k % len(styles)]
        reading = real_reader.read(canvas_like(image, rng, style, stroke))
        right.append(top_label(reading.label) == class_name(label))
    accuracy = float(np.mean(right))
    print(f"canvas-like accuracy on 200 digits: {accuracy:.1%}")
    assert accuracy >= 0.95


# -- the app over HTTP --------------------------------------------------------------------


def launch(reader: DigitReader):
    """Start the demo on 127.0.0.1 (a free port) without blocking; returns the running app."""
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    from kannada.demo import build_app

    app = build_app(reader)
    app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    return app


@pytest.fixture(scope="module")
def tiny_app(tiny_model):
    app = launch(DigitReader.from_file(tiny_model))
    yield app
    app.close()


@pytest.fixture(scope="module")
def real_app(real_reader):
    app = launch(real_reader)
    yield app
    app.close()


def save_canvas(picture: Image.Image, path: Path) -> Path:
    picture.save(path)
    return path


def test_the_api_answers_an_empty_canvas_and_a_bad_file_with_messages(tiny_app, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(tiny_app.local_url, verbose=False)
    blank = save_canvas(Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0)), tmp_path / "blank.png")
    for composite in (None, handle_file(str(blank))):
        value = {"background": None, "layers": [], "composite": composite}
        label, seen, status, looked, blocks = client.predict(value, api_name="/predict")
        assert label["label"] == EMPTY_MESSAGE and seen == ""
        assert NOTHING_YET in looked and NOTHING_YET in blocks

    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    label, _, status, _, _ = client.predict(handle_file(str(bad)), api_name="/predict_upload")
    assert label["label"] == "Unreadable image"
    assert "'notes.png': not an image file" in status
    # The canvas endpoint answers a file that is no picture in the same way.
    value = {"background": None, "layers": [], "composite": handle_file(str(bad))}
    label, _, status, _, _ = client.predict(value, api_name="/predict")
    assert label["label"] == "Unreadable image"
    assert "the drawing: not an image file" in status


def test_the_api_reads_a_drawn_digit_and_shows_the_inside(real_app, train_digits, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(real_app.local_url, verbose=False)
    images, labels = train_digits
    rng = np.random.default_rng(3)
    for k in range(3):
        path = save_canvas(canvas_like(images[k], rng, "rgba", "same"), tmp_path / f"{k}.png")
        value = {"background": None, "layers": [], "composite": handle_file(str(path))}
        label, seen, status, looked, blocks = client.predict(value, api_name="/predict")
        assert label["label"] == class_name(labels[k])
        assert {entry["label"] for entry in label["confidences"]} >= {class_name(labels[k])}
        [picture] = html_pictures(seen)
        assert picture.shape == (28, 28) and status.startswith("Read in")
        assert f"the score of {class_name(labels[k])} changes" in looked
        assert len(html_pictures(looked)) == 2 and len(html_pictures(blocks)) == 4
        # the first block: conv2d and what follows it (BatchNorm, ReLU), 32 maps of 28 x 28
        assert re.search(r"conv2d( \+ \w+)+: 32 &times; 28 &times; 28", blocks)
        label, *_ = client.predict(handle_file(str(path)), api_name="/predict_upload")
        assert label["label"] == class_name(labels[k])


# -- a real browser -----------------------------------------------------------------------


def oval_strokes(box: dict) -> list[list[tuple[float, float]]]:
    """Two strokes, left half then right half, that draw ೦ (zero, an oval) on the canvas."""
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    rx, ry = box["width"] * 0.2, box["height"] * 0.3
    halves = [(math.pi / 2, 3 * math.pi / 2), (3 * math.pi / 2, 5 * math.pi / 2 + 0.2)]
    return [
        [
            (cx + rx * math.cos(a + (b - a) * k / 4), cy + ry * math.sin(a + (b - a) * k / 4))
            for k in range(5)
        ]
        for a, b in halves
    ]


def test_a_browser_draws_a_zero_and_sees_the_prediction_and_the_inside(real_app):
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python is not installed (pip install playwright)",
    )
    if not CHROMIUM.is_file() and shutil.which("chromium") is None:
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(real_app.local_url)
            canvas = page.locator("#canvas canvas").first
            canvas.wait_for(timeout=30_000)
            # The page chooses the brush by itself; wait for that before the first stroke.
            page.locator("#canvas button[aria-label='Brush'].highlight").wait_for(timeout=30_000)
            strip = page.locator("#numerals").inner_text()
            for stroke in oval_strokes(canvas.bounding_box()):
                page.mouse.move(*stroke[0])
                page.mouse.down()
                for point in stroke[1:]:
                    page.mouse.move(*point)
                page.mouse.up()
            # Live predictions of the first stroke may still arrive; the button reads it all.
            page.get_by_role("button", name="Predict", exact=True).click()
            label = read_settled_label(page)
            seen = page.locator("#seen img").count()
            page.get_by_text("Inside the network", exact=True).click()
            page.locator("#blocks img").nth(3).wait_for(timeout=30_000)
            looked = page.locator("#looked").inner_text()
            looked_pictures = page.locator("#looked img").count()
            headings = page.locator("#blocks h4").all_inner_texts()
            page.screenshot(path=str(ARTIFACTS / "demo-browser.png"), full_page=True)
        finally:
            browser.close()
    assert label == class_name(0), f"the page shows {label!r}"
    assert all(numeral in strip for numeral in KANNADA_NUMERALS) and "9" in strip
    assert seen == 1 and looked_pictures == 2
    assert f"the score of {class_name(0)} changes" in looked
    assert re.fullmatch(r"conv2d( \+ \w+)+: 32 × 28 × 28", headings[0]) and len(headings) == 4


def read_settled_label(page, timeout: float = 40.0) -> str:
    """The predicted class name on the page once it has stayed the same for 2 seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        status = page.locator("#status").inner_text()
        heading = page.locator("#prediction [data-testid='label-output-value']").first
        current = heading.inner_text().strip() if heading.count() and "ms" in status else None
        if current != last:
            last, since = current, time.monotonic()
        elif current is not None and time.monotonic() - since >= 2:
            return current
        time.sleep(0.25)
    raise AssertionError(f"no settled prediction within {timeout} s (last seen: {last!r})")
