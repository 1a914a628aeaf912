"""The web demo: draw a Kannada digit (or upload a picture of one) and see what the network reads.

`python -m kannada.demo [--model M] [--host H] [--port P] [--share]` serves a Gradio page.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kannada.cli import RunError, run_command
from kannada.drawing import DrawingError, EmptyDrawing, prepare_digit
from kannada.predict import load_model, predict_images

PROG = "python -m kannada.demo"
KANNADA_NUMERALS = "೦೧೨೩೪೫೬೭೮೯"  # U+0CE6 .. U+0CEF, the digits 0 to 9
PRETRAINED_MODEL = Path(__file__).resolve().parent / "pretrained" / "model.npz"
EMPTY_MESSAGE = "Draw a digit"
CANVAS_SIDE = 420  # pixels; big enough for a finger, small enough for a phone screen
BRUSH_RADIUS = 14  # a digit drawn 300 px tall then has strokes like the dataset's (2-3 of 28 px)
ENLARGE = 10  # the 28x28 model input is shown at 280x280
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
    seen: uint8 (280, 280), the 28x28 network input enlarged, or None when there was none.
    status: one line for people: the latency, or what was wrong with the input.
    """

    label: dict[str, float] | str
    seen: np.ndarray | None
    status: str

    def outputs(self) -> tuple:
        """The values for the page's (label, seen image, status line) components."""
        return self.label, self.seen, self.status


class DigitReader:
    """The handler behind the page: picture -> Reading, with the model loaded once.

    One prediction at a time (a lock): layers keep per-call caches, and two cores gain
    nothing from running two forward passes side by side.
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
        start = time.perf_counter()
        try:
            if picture is None:
                raise EmptyDrawing(EMPTY_MESSAGE)
            digit = prepare_digit(picture, name)  # uint8 (28, 28)
        except EmptyDrawing:
            return Reading(EMPTY_MESSAGE, None, "Draw a digit on the canvas, or upload a picture.")
        except DrawingError as error:
            return Reading("Unreadable image", None, f"Could not read the picture: {error}")
        prepared = time.perf_counter()
        with self._lock:
            _, probs = predict_images(self.model, self.preprocessing, digit[None])
        done = time.perf_counter()
        label = {class_name(k): float(p) for k, p in enumerate(probs[0])}
        seen = np.kron(digit, np.ones((ENLARGE, ENLARGE), dtype=np.uint8))
        status = (
            f"Read in {1000 * (done - start):.1f} ms (picture {1000 * (prepared - start):.1f} ms, "
            f"network {1000 * (done - prepared):.1f} ms)"
        )
        return Reading(label, seen, status)

    def on_sketch(self, value) -> tuple:
        """Gradio handler for the canvas: its EditorValue dict -> (label, seen, status)."""
        return self.read(canvas_picture(value), "the drawing").outputs()

    def on_upload(self, path: str | None) -> tuple:
        """Gradio handler for an uploaded file's path (None when cleared) -> outputs."""
        name = None if path is None else f"'{Path(path).name}'"
        return self.read(path, name).outputs()


def canvas_picture(value):
    """The picture in what a Sketchpad sends: the composite of an EditorValue dict
    {"background", "layers", "composite"} (Gradio 4 to 6), or a plain image. None -> None.
    """
    if isinstance(value, dict):
        if value.get("composite") is not None:
            return value["composite"]
        layers = [layer for layer in value.get("layers") or [] if layer is not None]
        return layers[-1] if layers else value.get("background")
    return value


def upload_path(payload) -> str | None:
    """The server-side path in an Image payload that Gradio did not preprocess, or None.

    The upload event runs with preprocess=False so that our reader, not Gradio's, opens the
    file, and an unreadable one becomes a message instead of an error box.
    """
    if payload is None:
        return None
    if isinstance(payload, dict):
        return payload.get("path")
    return getattr(payload, "path", payload)


def build_app(reader: DigitReader):
    """The Gradio page (a gr.Blocks) around `reader`; launch it with .launch().

    API endpoints: "/predict" (canvas value -> label, seen, status), "/predict_live" (the same,
    fired on every stroke) and "/predict_upload" (an image file -> the same outputs).
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
                label = gr.Label(num_top_classes=3, label="Prediction", elem_id="prediction")
                seen = gr.Image(
                    label="What the network sees (28x28, enlarged)",
                    interactive=False,
                    format="png",
                    elem_id="seen",
                )
                status = gr.Markdown(label="Status", elem_id="status")
        outputs = [label, seen, status]
        clear.add([sketch, upload, *outputs])
        clear.click(None, None, None, js=CHOOSE_BRUSH_JS)
        predict.click(reader.on_sketch, sketch, outputs, api_name="predict")
        # "always_last": while one stroke is being read, later strokes collapse into one call.
        sketch.change(
            reader.on_sketch,
            sketch,
            outputs,
            api_name="predict_live",
            trigger_mode="always_last",
            show_progress="hidden",
        )
        upload.change(
            lambda payload: reader.on_upload(upload_path(payload)),
            upload,
            outputs,
            api_name="predict_upload",
            preprocess=False,
        )
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
