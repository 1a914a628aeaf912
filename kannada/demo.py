"""The web demo: draw a Kannada digit (or upload a picture of one) and see what the network reads.

`python -m kannada.demo [--model M] [--host H] [--port P] [--share]` serves a Gradio page.
"""

from __future__ import annotations

import argparse
import base64
import errno
import html
import io
import os
import socket
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kannada.cli import RunError, run_command
from kannada.drawing import DrawingError, EmptyDrawing, prepare_digit
from kannada.inside import Inside, look_inside_all, map_grid, saliency_pictures
from kannada.predict import load_model, probabilities

PROG = "python -m kannada.demo"
KANNADA_NUMERALS = "೦೧೨೩೪೫೬೭೮೯"  # U+0CE6 .. U+0CEF, the digits 0 to 9
PRETRAINED_MODEL = Path(__file__).resolve().parent / "pretrained" / "model.npz"
EMPTY_MESSAGE = "Draw a digit"
CANVAS_SIDE = 420  # pixels; big enough for a finger, small enough for a phone screen
BRUSH_RADIUS = 14  # a digit drawn 300 px tall then has strokes like the dataset's (2-3 of 28 px)
SEEN_SCALE = 10  # the 28x28 model input is shown at 280x280
LOOKED_SCALE = 7  # the two saliency pictures side by side, 196 px each
MAP_TILE = 56  # pixels: each activation map is shown this tall (28 x 28 maps twice as large)
MAX_BATCH = 8  # requests read together at most (a class's drawings arriving at once)
# Gradio's queue recomputes the latency figures of the "View API" page (a pandas table of up to
# 10,000 past events) after every event unless this environment variable says otherwise; the
# table grows with every request and the work takes the cores the requests need.
GRADIO_FIGURES_EVERY = ("GRADIO_ANALYTICS_CACHE_FREQUENCY", "100")  # events
NOTHING_YET = "Draw a digit to see this."
# Gradio 6 opens a Sketchpad with no tool chosen ("select the draw tool to start"), and its
# Clear drops the tool again: choose the brush, once the canvas has settled, so that a person
# can draw at once. Clicking only while it is not chosen keeps a second click from undoing it.
CHOOSE_BRUSH_JS = """
() => {
  const choose = (tries) => {
    const brush = document.querySelector("#canvas button[aria-label='Brush']");
    if (brush && brush.classList.contains("highlight")) return;
    if (brush) brush.click();
    if (tries > 0) setTimeout(() => choose(tries - 1), 250);
  };
  setTimeout(() => choose(40), 300);
}
"""


def class_name(digit: int) -> str:
    """The name shown for a class: the Kannada numeral and the Arabic digit, e.g. "೩ · 3"."""
    return f"{KANNADA_NUMERALS[digit]} · {digit}"


def choose_model(option: str | None, runs_dir: str | Path = "runs") -> Path:
    """The model file --model names: None -> the model shipped with kannada, "latest" -> the
    newest runs/*/model.npz, anything else -> that path.

    Raises RunError saying where we looked and what to do instead.
    """
    if option is None:
        if not PRETRAINED_MODEL.is_file():
            raise RunError(
                f"the model shipped with kannada ({PRETRAINED_MODEL}) is missing, so the "
                "installation is incomplete; reinstall, or pass --model PATH (or --model latest)"
            )
        return PRETRAINED_MODEL
    if option == "latest":
        runs = sorted(Path(runs_dir).glob("*/model.npz"), key=lambda path: path.stat().st_mtime)
        if not runs:
            raise RunError(
                f"--model latest: no {Path(runs_dir) / '*' / 'model.npz'} here; train one with "
                "`python -m kannada.train`, or leave out --model to use the shipped model"
            )
        return runs[-1]
    return Path(option).expanduser()


def describe_model(path: Path, metadata: dict) -> str:
    """One line for the page: which model reads the digits and how accurate it was found.

    The accuracies are those kannada.train measured and stored in the file
    (validation_accuracy, dig_accuracy); a file without them says so.
    """
    name = "the model shipped with kannada" if path == PRETRAINED_MODEL else f"`{path}`"
    measured = [
        f"{metadata[key]:.2%} {what}"
        for key, what in (
            ("validation_accuracy", "on writers held out from training"),
            ("dig_accuracy", "on Dig-MNIST"),
        )
        if isinstance(metadata.get(key), int | float)
    ]
    accuracy = ", ".join(measured) if measured else "its accuracy is not recorded in the file"
    return f"Model: {name} ({accuracy})."


@dataclass(frozen=True)
class Reading:
    """What the page shows for one picture.

    label: {class name: probability} for gr.Label, or a short message ("Draw a digit").
    seen: uint8 (28, 28), the network's input before its preprocessing, or None when there
        was none.
    status: one line for people: the latency, or what was wrong with the input.
    inside: what the network computed for it (kannada.inside), or None when there was no digit.
    """

    label: dict[str, float] | str
    seen: np.ndarray | None
    status: str
    inside: Inside | None = None

    def outputs(self) -> tuple:
        """The values for the page's outputs: label, seen, status, looked and blocks (seen,
        looked and blocks as HTML with the pictures inside it, see picture_html)."""
        return (
            self.label,
            seen_html(self.seen),
            self.status,
            looked_html(self.seen, self.inside),
            blocks_html(self.inside),
        )


class DigitReader:
    """The handler behind the page: pictures -> Readings, with the model loaded once.

    The network reads one batch at a time (a lock): the plain layers keep per-call caches,
    and two cores gain nothing from running two forward passes side by side. Preparing the
    pictures and drawing the panels need no lock. A model from load_model brings minicnn's
    engine and its process-wide setting, BLAS on one thread: the plain layers keep to one core
    and leave the other to Gradio, instead of two BLAS threads spinning on both.
    """

    def __init__(self, model, preprocessing, about: str = "") -> None:
        self.model = model
        self.preprocessing = preprocessing
        self.about = about  # the page's line about the model (describe_model)
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | Path) -> DigitReader:
        """Load a model.npz written by kannada.train (raises minicnn.ModelFileError)."""
        model, preprocessing = load_model(path)
        return cls(model, preprocessing, describe_model(Path(path), model.metadata))

    def read(self, picture, name: str | None = None) -> Reading:
        """Any picture prepare_digit accepts (path, bytes, PIL image, array), or None -> Reading.

        Bad input gives a Reading with a message, never an exception.
        """
        return self.read_all([(picture, name)])[0]

    def read_all(self, pictures: Sequence[tuple[object, str | None]]) -> list[Reading]:
        """Several (picture, name) pairs at once, as Gradio batches them: each picture is
        prepared, then one pass of the network over all the digits gives their answers and
        inside views (kannada.inside.look_inside_all). Returns one Reading per picture, in
        order."""
        start = time.perf_counter()
        prepared = [prepare_picture(picture, name) for picture, name in pictures]
        digits = [digit for digit in prepared if not isinstance(digit, Reading)]
        if not digits:
            return prepared  # only messages: nothing drawn, or nothing readable
        prepared_at = time.perf_counter()
        with self._lock:
            logits, insides = look_inside_all(self.model, self.preprocessing, np.stack(digits))
        probs = probabilities(self.model, logits)
        done = time.perf_counter()
        together = f"; {len(digits)} drawings read together" if len(digits) > 1 else ""
        status = (
            f"Read in {1000 * (done - start):.1f} ms (picture {1000 * (prepared_at - start):.1f} "
            f"ms, network and inside {1000 * (done - prepared_at):.1f} ms{together})"
        )
        found = iter(zip(digits, probs, insides, strict=True))
        readings = []
        for item in prepared:
            if isinstance(item, Reading):
                readings.append(item)
            else:
                digit, p, inside = next(found)
                label = {class_name(k): float(value) for k, value in enumerate(p)}
                readings.append(Reading(label, digit, status, inside))
        return readings

    def on_sketches(self, values: Sequence) -> list[list]:
        """Gradio handler (batched) for the canvas: Sketchpad payloads -> one list per output.

        The event runs with preprocess=False, so a payload is the EditorValue dict with file
        payloads ({"path": ...}) in it, and a file that is no picture gets our message."""
        pictures = [(payload_path(canvas_picture(value)), "the drawing") for value in values]
        return output_columns(self.read_all(pictures))

    def on_uploads(self, payloads: Sequence) -> list[list]:
        """Gradio handler (batched) for uploaded files (their payloads, None when cleared)."""
        pictures = []
        for payload in payloads:
            path = payload_path(payload)
            pictures.append((path, None if path is None else f"'{Path(path).name}'"))
        return output_columns(self.read_all(pictures))


def prepare_picture(picture, name: str | None) -> np.ndarray | Reading:
    """The picture as the network's uint8 (28, 28) digit, or a Reading with the message that
    says why there is none (nothing drawn, or not a picture we can read)."""
    try:
        if picture is None:
            raise EmptyDrawing(EMPTY_MESSAGE)
        return prepare_digit(picture, name)
    except EmptyDrawing:
        return Reading(EMPTY_MESSAGE, None, "Draw a digit on the canvas, or upload a picture.")
    except DrawingError as error:
        return Reading("Unreadable image", None, f"Could not read the picture: {error}")


def output_columns(readings: Sequence[Reading]) -> list[list]:
    """What a batched Gradio function returns: one list per output, one entry per reading."""
    return [
        list(column) for column in zip(*(reading.outputs() for reading in readings), strict=True)
    ]


def canvas_picture(value):
    """The picture in what a Sketchpad sends: the composite of an EditorValue dict
    {"background", "layers", "composite"} (Gradio 4 to 6), or a plain image. None -> None.
    """
    if isinstance(value, dict) and "composite" in value:
        if value.get("composite") is not None:
            return value["composite"]
        layers = [layer for layer in value.get("layers") or [] if layer is not None]
        return layers[-1] if layers else value.get("background")
    return value


def payload_path(payload):
    """The server-side path in a file payload that Gradio did not preprocess ({"path": ...}),
    or the payload itself when it is already a picture (a path, an image). None -> None.

    The events run with preprocess=False so that our reader, not Gradio's, opens the file,
    and an unreadable one becomes a message instead of an error box.
    """
    if isinstance(payload, dict):
        return payload.get("path")
    return getattr(payload, "path", payload)


# -- the panels as HTML --------------------------------------------------------------------
# The pictures travel inside the HTML as data: URLs. Gradio would save each image output as a
# file, send its address and let the browser fetch it (one more request per picture); two
# identical pictures then share one file that is rewritten while it is being served.


def png_data_url(image: np.ndarray) -> str:
    """A uint8 (H, W) grey or (H, W, 3) RGB image as a data:image/png;base64 URL."""
    picture = Image.fromarray(image)
    if picture.mode == "L":
        # The same pixels as indices into a palette of the 256 greys: Pillow filters no
        # palette image before compressing it (as the PNG specification advises), the slow
        # part of writing a grey one.
        picture = picture.convert("P")
    buffer = io.BytesIO()
    # The least compression, runs of equal bytes only: the pictures are small (runs of black
    # between the strokes), and the answer should leave at once.
    picture.save(buffer, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def picture_html(image: np.ndarray, scale: int, alt: str) -> str:
    """An <img> of the image enlarged `scale` times with square pixels (no smoothing)."""
    height, width = image.shape[:2]
    return (
        f'<img src="{png_data_url(image)}" alt="{html.escape(alt)}" width="{width * scale}" '
        f'height="{height * scale}" style="image-rendering: pixelated; max-width: 100%; '
        'height: auto;">'
    )


def figure_html(picture: str, caption: str) -> str:
    """A picture with its caption under it, side by side with the next figure."""
    return (
        '<figure style="display: inline-block; margin: 0 12px 8px 0; vertical-align: top;">'
        f'{picture}<figcaption style="font-size: 0.9em;">{caption}</figcaption></figure>'
    )


def seen_html(digit: np.ndarray | None) -> str:
    """The network's 28 x 28 input, shown 10 times larger ("" when there is none)."""
    if digit is None:
        return ""
    return picture_html(digit, SEEN_SCALE, "the 28 x 28 picture the network reads")


def looked_html(digit: np.ndarray | None, inside: Inside | None) -> str:
    """The saliency panel: |d score / d pixel| over the digit, pixel by pixel and smoothed."""
    if digit is None or inside is None:
        return f"<p>{NOTHING_YET}</p>"
    pixelwise, smooth = saliency_pictures(digit, inside.saliency)
    name = class_name(inside.target)
    return (
        f"<p>How much the score of {name} changes when one pixel of the input changes (the "
        "gradient, computed by minicnn's backward pass): the brighter, the more that pixel "
        "counts.</p>"
        + figure_html(picture_html(pixelwise, LOOKED_SCALE, "saliency"), "pixel by pixel")
        + figure_html(picture_html(smooth, LOOKED_SCALE, "smoothed saliency"), "smoothed")
    )


def blocks_html(inside: Inside | None) -> str:
    """The activations panel: one grid of maps per convolution block, with its name and shape."""
    if inside is None:
        return f"<p>{NOTHING_YET}</p>"
    if not inside.blocks:
        return "<p>This model has no convolution layers.</p>"
    parts = []
    for k, view in enumerate(inside.blocks):
        count, height, width = view.block.shape
        if k == 0:
            which = f"all {count} channels"
        else:
            shown = ", ".join(str(c) for c in view.channels)
            which = f"the {len(view.channels)} of {count} channels most active here ({shown})"
        parts.append(
            f"<h4 style='margin: 12px 0 4px;'>{view.block.name}: {count} &times; {height} "
            f"&times; {width}</h4><p style='margin: 0 0 4px;'>Its output for this drawing, "
            f"{which}; white is the strongest value in the block, black is 0.</p>"
            + picture_html(map_grid(view.maps), MAP_TILE // height, f"{view.block.name} maps")
        )
    return "".join(parts)


def numerals_html() -> str:
    """The strip of the ten Kannada numerals, each above the Arabic digit it stands for."""
    cells = "".join(
        '<div style="display: inline-block; text-align: center; width: 3.2em; margin: 2px;">'
        f'<div style="font-size: 2em; line-height: 1.2;">{numeral}</div>'
        f"<div>{digit}</div></div>"
        for digit, numeral in enumerate(KANNADA_NUMERALS)
    )
    return f'<div lang="kn">{cells}</div>'


def build_app(reader: DigitReader):
    """The Gradio page (a gr.Blocks) around `reader`; launch it with .launch().

    API endpoints: "/predict" (canvas value -> label, seen, status, looked, blocks: the label,
    a Markdown status line and HTML for the rest), "/predict_live" (the same, fired on every
    stroke) and "/predict_upload" (an image file -> the same outputs).
    """
    try:
        import gradio as gr
    except ImportError:
        raise RunError(
            "the demo needs Gradio: pip install 'minicnn-kannada[demo]' (or pip install gradio)"
        ) from None

    with gr.Blocks(title="Kannada digits") as app:
        gr.Markdown(
            "## Handwritten Kannada digits\n"
            "Draw one digit (೦ to ೯) with the mouse or a finger; the network reads it as you draw."
        )
        gr.HTML(numerals_html(), elem_id="numerals")
        gr.Markdown(
            "The ten Kannada numerals (top) and the digits they stand for: draw one of them.",
            elem_id="numerals-note",
        )
        gr.Markdown(reader.about, elem_id="model")
        with gr.Row():
            with gr.Column():
                sketch = gr.Sketchpad(
                    label="Draw a digit",
                    canvas_size=(CANVAS_SIDE, CANVAS_SIDE),
                    height=CANVAS_SIDE + 120,  # room for the toolbar: the canvas at 100 %
                    brush=gr.Brush(
                        default_size=BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"
                    ),
                    image_mode="RGBA",
                    type="pil",
                    format="png",
                    layers=False,
                    transforms=(),
                    elem_id="canvas",
                )
                with gr.Row():
                    clear = gr.ClearButton(value="Clear")
                    predict = gr.Button("Predict", variant="primary")
                upload = gr.Image(
                    label="...or upload a picture (PNG, JPEG)",
                    sources=["upload"],
                    type="filepath",
                    elem_id="upload",
                )
            with gr.Column():
                label = gr.Label(
                    num_top_classes=3,
                    label="Prediction: the three likeliest digits and the network's confidence",
                    elem_id="prediction",
                )
                gr.Markdown(
                    "**What the network sees**: your drawing made into a 28 x 28 picture the "
                    "way the dataset's digits were made (shown 10 times larger)."
                )
                seen = gr.HTML(elem_id="seen")
                status = gr.Markdown(label="Status", elem_id="status")
        with gr.Accordion("Inside the network", open=False, elem_id="inside"):
            gr.Markdown(
                "What the network computes for your drawing, by minicnn's layers run one by one "
                "on it; it changes with every stroke."
            )
            gr.Markdown("### Where the network looked")
            looked = gr.HTML(f"<p>{NOTHING_YET}</p>", elem_id="looked")
            gr.Markdown("### What each convolution block computes")
            blocks = gr.HTML(f"<p>{NOTHING_YET}</p>", elem_id="blocks")
        outputs = [label, seen, status, looked, blocks]
        clear.add([sketch, upload, label, seen, status])
        clear.click(None, None, None, js=CHOOSE_BRUSH_JS)
        # The three events share one queue; a batch holds the requests waiting when it starts
        # (up to MAX_BATCH), so that the network reads them in one call. Two batches at a
        # time: while one is in the network (the reader's lock), the other prepares its
        # pictures or draws its panels. preprocess=False: our reader, not Gradio's, opens the
        # files.
        network = {
            "concurrency_id": "network",
            "concurrency_limit": 2,
            "batch": True,
            "max_batch_size": MAX_BATCH,
            "preprocess": False,
        }
        predict.click(reader.on_sketches, sketch, outputs, api_name="predict", **network)
        # "always_last": while one stroke is being read, later strokes collapse into one call.
        sketch.change(
            reader.on_sketches,
            sketch,
            outputs,
            api_name="predict_live",
            trigger_mode="always_last",
            show_progress="hidden",
            **network,
        )
        upload.change(reader.on_uploads, upload, outputs, api_name="predict_upload", **network)
        app.load(None, None, None, js=CHOOSE_BRUSH_JS)
    return app


def check_port(host: str, port: int) -> None:
    """Raise RunError naming --port (or --host) when the demo could not serve there."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            probe.bind((host, port))
    except socket.gaierror as error:
        raise RunError(f"--host {host}: not an address this machine knows ({error})") from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise RunError(
                f"--port {port}: the port is in use on {host} (another demo, or another "
                "program); choose another with --port"
            ) from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise RunError(f"--host {host}: not an address of this machine") from None
        if error.errno == errno.EACCES:
            raise RunError(
                f"--port {port}: this user may not serve on it (ports below 1024 need "
                "privileges); choose one above 1023 with --port"
            ) from None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with argv (default: sys.argv[1:]); return the exit status."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Serve a web page that reads handwritten Kannada digits."
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="a model.npz written by kannada.train, or 'latest' for the newest "
        "runs/*/model.npz (default: the model shipped with kannada)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    parser.add_argument(
        "--share", action="store_true", help="also publish a temporary public link (off by default)"
    )
    args = parser.parse_args(argv)
    return run_command(
        PROG, lambda: _serve(args), lambda: "the demo has stopped (it writes nothing)"
    )


def _serve(args: argparse.Namespace) -> int:
    """Load the model, check the address, serve the page until Ctrl-C."""
    model_path = choose_model(args.model)
    reader = DigitReader.from_file(model_path)
    check_port(args.host, args.port)
    os.environ.setdefault(*GRADIO_FIGURES_EVERY)  # read when build_app makes the queue
    app = build_app(reader)
    print(f"model: {model_path}")
    try:
        app.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            prevent_thread_lock=True,
        )
    except OSError as error:  # taken in the meantime; Gradio's message names its own settings
        raise RunError(f"--port {args.port}: could not serve on {args.host} ({error})") from None
    try:
        while True:  # Gradio serves from its own threads; Ctrl-C ends the wait
            time.sleep(0.5)
    finally:
        app.close()


if __name__ == "__main__":
    sys.exit(main())
