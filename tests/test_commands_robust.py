"""What stops a kannada command, through the command itself: Ctrl-C at each stage of a run (a
real SIGINT to a real process), a full disk, an output path that cannot be written, a port in
use, a download that fails, files given where a model or images are expected.

Every one ends with one line on stderr (no traceback), exit code 130 for Ctrl-C and 1 for the
rest, and leaves nothing damaged and no empty run folder behind.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import minicnn
from kannada import evaluate, export, predict, train
from kannada.drawing import prepare_digit

REPO_ROOT = Path(__file__).resolve().parents[1]
ROWS_PER_WRITER = 1280
PIXELS = [f"pixel{i}" for i in range(784)]
TRAIN = "python -m kannada.train"


# ---------------------------------------------------------------- small data and models


def write_kaggle_folder(folder: Path, n_train: int = 2 * ROWS_PER_WRITER) -> Path:
    """train.csv (labels cycling 0-9, as on the real pages), Dig-MNIST.csv and test.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, first, n in (("train.csv", "label", n_train), ("Dig-MNIST.csv", "label", 40)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 784))
        images[np.arange(n), 100 + 28 * labels] = 250  # a dot whose row is the label
        table = pd.DataFrame(np.column_stack([labels, images]), columns=[first, *PIXELS])
        table.to_csv(folder / name, index=False)
    test = pd.DataFrame(rng.integers(0, 255, (30, 784)), columns=PIXELS)
    test.insert(0, "id", np.arange(30))
    test.to_csv(folder / "test.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_kaggle_folder(tmp_path_factory.mktemp("kaggle"))


@pytest.fixture(scope="module")
def big_gzip_data(tmp_path_factory) -> Path:
    """A train.csv.gz of 12,000 rows (about 7 MB compressed), which takes a moment to read."""
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(1)
    block = rng.integers(0, 40, (ROWS_PER_WRITER, 785))
    block[:, 0] = np.arange(ROWS_PER_WRITER) % 10
    text = "\n".join(",".join(map(str, row)) for row in block.tolist()) + "\n"
    header = ",".join(["label", *PIXELS]) + "\n"
    with gzip.open(folder / "train.csv.gz", "wt", compresslevel=1) as file:
        file.write(header)
        for _ in range(12_000 // ROWS_PER_WRITER):
            file.write(text)
    return folder


def quick_run_args(
    data_dir: Path, out: Path, name: str, epochs: int = 1, zca: bool = False
) -> list[str]:
    """A run of 192 rows (96 to train on: one batch per epoch), quiet."""
    return [
        *("--data-dir", str(data_dir), "--limit", "192", "--epochs", str(epochs)),
        *("--out", str(out), "--name", name, "--quiet", "--zca" if zca else "--no-zca"),
    ]


def one_error_line(err: str, prog: str) -> str:
    """The single line a command printed on stderr (asserting there is exactly one)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: "), err
    assert "Traceback" not in err
    return lines[0]


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


# ---------------------------------------------------------------- a real Ctrl-C


def ctrl_c_as_in_a_terminal() -> None:
    """In the child, before Python starts: SIGINT back to its default. A terminal's foreground
    command has it so; a job that a shell without job control started with `&` (a CI script
    may run pytest so) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Command:
    """`python -m kannada.<module> args` in a child process, its stdout read line by line."""

    def __init__(self, module: str, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=ctrl_c_as_in_a_terminal,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"the command ended before {what}: {self.process.stderr.read()}")
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"waited {timeout} s for {what}")
            time.sleep(0.01)

    def interrupt(self) -> tuple[int, str]:
        """Send SIGINT (what Ctrl-C sends); return the exit code and stderr."""
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=60)
        finally:
            self.process.kill()
        self._reader.join(timeout=5)
        return self.process.returncode, err


def reading_position(pid: int, name: str) -> int:
    """How far process `pid` has read into its open file called `name` (bytes), or -1."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        for fd in fds.iterdir():
            if os.readlink(fd).endswith(name):
                info = (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text()
                return int(info.split("pos:")[1].split()[0])
    except (OSError, IndexError):  # the file was closed meanwhile
        pass
    return -1


def test_ctrl_c_while_the_data_loads(big_gzip_data: Path, tmp_path: Path):
    if not Path("/proc/self/fdinfo").is_dir():
        pytest.skip("needs /proc (Linux) to see when the command is reading the data")
    out = tmp_path / "runs"
    command = Command("kannada.train", *quick_run_args(big_gzip_data, out, "x"))
    # Past the first 256 KiB of the compressed file: pandas' parser is reading it (the earlier
    # reads, of the gzip magic and of the header, stop long before).
    command.wait_for(
        lambda: reading_position(command.process.pid, "train.csv.gz") > 256 * 1024,
        "pandas to read train.csv.gz",
    )
    code, err = command.interrupt()
    assert code == 130
    assert one_error_line(err, TRAIN) == f"{TRAIN}: interrupted; nothing was written"
    assert not out.exists()  # no empty run folder


def test_ctrl_c_during_training(data_dir: Path, tmp_path: Path):
    run = tmp_path / "runs" / "stopped"
    command = Command("kannada.train", *quick_run_args(data_dir, tmp_path / "runs", "stopped", 99))
    first: list[int] = []

    def second_checkpoint() -> bool:  # epoch 0's file, then epoch 1's replaces it
        try:
            inode = (run / "checkpoint.npz").stat().st_ino
        except FileNotFoundError:
            return False
        first[:] = first or [inode]
        return inode != first[0]

    command.wait_for(second_checkpoint, "the checkpoint after epoch 1")
    code, err = command.interrupt()
    assert code == 130
    epoch = minicnn.load(run / "checkpoint.npz").metadata["epoch"]
    assert epoch >= 1
    assert one_error_line(err, TRAIN) == (
        f"{TRAIN}: interrupted; the checkpoint after epoch {epoch} is saved; "
        f"continue with: {TRAIN} --resume {run}"
    )
    assert files_under(run) == ["checkpoint.npz"]  # no temporary files, no model yet


def test_ctrl_c_during_the_reports_then_resume_writes_them(data_dir: Path, tmp_path: Path):
    run = tmp_path / "runs" / "reports"
    command = Command("kannada.train", *quick_run_args(data_dir, tmp_path / "runs", "reports"))
    command.wait_for(lambda: any("evaluating" in line for line in command.lines), "the reports")
    code, err = command.interrupt()
    assert code == 130
    assert one_error_line(err, TRAIN) == (
        f"{TRAIN}: interrupted; training is done (checkpoint after epoch 1 in {run}) but the "
        f"reports are not all written; write them with: {TRAIN} --resume {run}"
    )
    assert not (run / "model.npz").exists() and not (run / "metrics.json").exists()
    assert not [name for name in files_under(run) if name.endswith(".tmp")]

    # A writer killed mid-write leaves its temporary file; --resume clears it away.
    stray = run / f".accuracy.png.{dead_process_id()}.0123abcd.tmp"
    stray.write_bytes(b"half a PNG")
    assert train.main(["--resume", str(run), "--quiet"]) == 0
    assert not stray.exists()
    assert (run / "model.npz").is_file() and (run / "metrics.json").is_file()
    assert minicnn.load(run / "model.npz").metadata["epochs_trained"] == 1


def dead_process_id() -> int:
    """The id of a process that has ended (and is very unlikely to be reused this soon)."""
    probe = subprocess.Popen([sys.executable, "-c", "pass"])
    probe.wait()
    return probe.pid


def test_ctrl_c_stops_the_demo(tiny_model: Path):
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def serving() -> bool:
        with socket.socket() as client:
            return client.connect_ex(("127.0.0.1", port)) == 0

    command = Command("kannada.demo", "--model", str(tiny_model), "--port", str(port))
    command.wait_for(serving, "the demo to serve its page", timeout=120)
    code, err = command.interrupt()
    assert code == 130
    prog = "python -m kannada.demo"
    assert one_error_line(err, prog) == (
        f"{prog}: interrupted; the demo has stopped (it writes nothing)"
    )


@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_ctrl_c_in_the_other_commands_is_one_line(command, tiny_model, data_dir, tmp_path, capsys):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "out"
    module, args = {
        "evaluate": (evaluate, ["--data-dir", str(data_dir), "--out", str(out)]),
        "predict": (predict, ["--input", str(data_dir / "test.csv"), "--output", str(out)]),
        "export": (export, ["--output", str(out)]),
    }[command]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "load_model" if command != "export" else "export_model", ctrl_c)
        assert module.main(["--model", str(tiny_model), *args]) == 130
    prog = f"python -m kannada.{command}"
    assert (
        one_error_line(capsys.readouterr().err, prog) == f"{prog}: interrupted; nothing was written"
    )
    assert not out.exists()


# ---------------------------------------------------------------- a full disk


def mount_tmpfs(folder: Path, options: str) -> bool:
    """Mount a tmpfs with these options on folder; False when this machine does not let us."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """small_disk(megabytes): a folder on a file system of that size: a tmpfs where we may
    mount one (as root), else a folder where atomic writes fail once the folder's files would
    pass that size (a patched os.fsync, the last step of minicnn.files.atomic_write)."""
    mounted: list[Path] = []

    def make(megabytes: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        if mount_tmpfs(folder, f"size={megabytes}m"):
            mounted.append(folder)
            return folder
        limit, real_fsync = megabytes * 2**20, os.fsync

        def fsync(fd: int) -> None:
            used = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
            if used > limit:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_fsync(fd)

        patch.setattr(os, "fsync", fsync)
        return folder

    with pytest.MonkeyPatch.context() as patch:
        yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_before_the_first_checkpoint_leaves_nothing(data_dir: Path, small_disk, capsys):
    disk = small_disk(1)  # the first checkpoint (10 MB) does not fit
    out = disk / "runs"
    assert train.main(quick_run_args(data_dir, out, "full")) == 1
    line = one_error_line(capsys.readouterr().err, TRAIN)
    folder = out / "full"
    assert line.startswith(f"{TRAIN}: error: {folder / 'checkpoint.npz'}: no space left on device")
    needed = train.space_needed_mb(train.Run({"zca": False}, folder))
    assert line.endswith(
        f"(a run needs about {needed:.0f} MB free in {folder}); nothing was written"
    )
    assert list(disk.iterdir()) == []  # no run folder, no runs/ folder, no temporary file


def test_a_full_disk_during_training_keeps_the_last_checkpoint(data_dir: Path, small_disk, capsys):
    # Epoch 0's checkpoint has no Adam moments yet (3.5 MB), epoch 1's has them (10.5 MB):
    # both fit, but not epoch 2's beside epoch 1's.
    disk = small_disk(16)
    folder = disk / "runs" / "full"
    assert train.main(quick_run_args(data_dir, disk / "runs", "full", epochs=3)) == 1
    line = one_error_line(capsys.readouterr().err, TRAIN)
    assert "checkpoint.npz: no space left on device; free some space there" in line
    checkpoint = minicnn.load(folder / "checkpoint.npz")  # whole, and loads
    epoch = checkpoint.metadata["epoch"]
    assert epoch == 1
    assert line.endswith(
        f"the checkpoint after epoch {epoch} is saved; continue with: {TRAIN} --resume {folder}"
    )
    assert files_under(folder) == ["checkpoint.npz"]  # no temporary file left


def test_space_needed_is_what_a_run_writes(data_dir: Path, tmp_path: Path):
    """The figure the full-disk message gives covers the run folder at its fullest (its files
    and a second checkpoint while one replaces the other), without overstating it much."""
    assert train.main(quick_run_args(data_dir, tmp_path, "sized", zca=True)) == 0
    run = tmp_path / "sized"
    fullest = sum(path.stat().st_size for path in run.iterdir())
    fullest += (run / "checkpoint.npz").stat().st_size
    config = minicnn.load(run / "model.npz").metadata["config"]
    needed = train.space_needed_mb(train.Run(config, run)) * 1e6
    assert fullest <= needed <= fullest + train.REPORTS_MB * 1e6


# ---------------------------------------------------------------- output paths


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write in: a read-only tmpfs as root (permission bits do not stop
    root), else a folder with mode 0o555."""
    folder = tmp_path / "read-only"
    if mount_tmpfs(folder, "ro,size=1m"):
        yield folder
        subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    if os.name != "posix" or os.geteuid() == 0:
        pytest.skip("cannot make a read-only folder here (root, and mount is not allowed)")
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def test_train_out_that_cannot_be_written(data_dir: Path, tmp_path: Path, read_only_folder, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    for out, expected in (
        (a_file, f"--out {a_file / 'x'}: {a_file} is a file, not a folder"),
        (a_file / "runs", f"--out {a_file / 'runs' / 'x'}: {a_file} is a file, not a folder"),
        (read_only_folder, f"--out {read_only_folder / 'x'}: cannot write in {read_only_folder}"),
    ):
        assert train.main(quick_run_args(data_dir, out, "x")) == 1
        assert one_error_line(capsys.readouterr().err, TRAIN).startswith(
            f"{TRAIN}: error: {expected}"
        )
    assert a_file.read_text() == "not a folder" and list(read_only_folder.iterdir()) == []


def test_other_outputs_that_cannot_be_written(
    tiny_model: Path, data_dir: Path, tmp_path: Path, read_only_folder, capsys
):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    model = ["--model", str(tiny_model)]
    for main, args, expected in (
        (
            evaluate.main,
            [*model, "--data-dir", str(data_dir), "--out", str(a_file)],
            f"--out {a_file}: {a_file} is a file, not a folder",
        ),
        (
            predict.main,
            [
                *model,
                "--input",
                str(data_dir / "test.csv"),
                "--output",
                str(read_only_folder / "s.csv"),
            ],
            f"--output {read_only_folder / 's.csv'}: cannot write in {read_only_folder}",
        ),
        (
            export.main,
            [*model, "--output", str(tmp_path)],
            f"--output {tmp_path}: is a folder; expected the name of a file to write",
        ),
    ):
        assert main(args) == 1
        prog = f"python -m {main.__module__}"
        line = one_error_line(capsys.readouterr().err, prog)
        assert line.startswith(f"{prog}: error: {expected}")
    assert a_file.read_text() == "not a folder" and list(read_only_folder.iterdir()) == []


def test_an_os_error_while_writing_is_a_sentence(
    tiny_model, data_dir, tmp_path, monkeypatch, capsys
):
    """Permission denied in the middle of writing (the folder was fine when checked)."""

    def denied(ids, labels, path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(predict, "write_submission_csv", denied)
    out = tmp_path / "submission.csv"
    args = ["--model", str(tiny_model), "--input", str(data_dir / "test.csv"), "--output", str(out)]
    assert predict.main(args) == 1
    line = one_error_line(capsys.readouterr().err, "python -m kannada.predict")
    assert line == (
        f"python -m kannada.predict: error: {out}: permission denied; choose a folder you may "
        "write to, or change its permissions"
    )


# ---------------------------------------------------------------- the first run


def test_a_failed_download_says_the_install_worked(tmp_path, monkeypatch, capsys):
    with socket.socket() as probe:  # a port nobody listens on: the download fails at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KANNADA_MNIST_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("KANNADA_MNIST_HOME", str(tmp_path / "cache"))
    assert train.main(["--out", str(tmp_path / "runs"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"{TRAIN}: error: the installation worked, but the Kannada-MNIST data could not be "
        "downloaded: could not download"
    )
    assert "To get the data by hand, download these files:" in err and "--data-dir" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- what users give as input


def test_a_png_named_npz_is_not_a_model_file(tmp_path, data_dir, capsys):
    picture = tmp_path / "model.npz"
    Image.new("L", (28, 28)).save(picture, format="PNG")
    for main, extra in (
        (
            predict.main,
            ["--input", str(data_dir / "test.csv"), "--output", str(tmp_path / "s.csv")],
        ),
        (evaluate.main, ["--data-dir", str(data_dir), "--out", str(tmp_path / "eval")]),
        (export.main, ["--output", str(tmp_path / "small.npz")]),
    ):
        assert main(["--model", str(picture), *extra]) == 1
        line = one_error_line(capsys.readouterr().err, f"python -m {main.__module__}")
        assert f"{picture}: not a minicnn model file" in line and "allow_pickle" not in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.npz"]


def test_predict_reads_csvs_with_or_without_the_id_or_label_column(
    tiny_model, data_dir, tmp_path, capsys
):
    test = pd.read_csv(data_dir / "test.csv")
    train_rows = pd.read_csv(data_dir / "Dig-MNIST.csv")
    pixels_only = tmp_path / "pixels.csv"
    test[PIXELS].to_csv(pixels_only, index=False)
    images = test[PIXELS].to_numpy(np.uint8).reshape(-1, 28, 28)
    expected = predict.predict_images(*predict.load_model(tiny_model), images)[0]
    out = tmp_path / "submission.csv"
    for path in (data_dir / "test.csv", pixels_only):
        assert (
            predict.main(["--model", str(tiny_model), "--input", str(path), "--output", str(out)])
            == 0
        )
        written = pd.read_csv(out)
        assert list(written["id"]) == list(range(30)) and list(written["label"]) == list(expected)
    assert (
        predict.main(
            [
                "--model",
                str(tiny_model),
                "--input",
                str(data_dir / "Dig-MNIST.csv"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert "the file has labels: accuracy" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == len(train_rows)


def test_predict_reads_npy_arrays(tiny_model, tmp_path, capsys):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    expected = predict.predict_images(*predict.load_model(tiny_model), images)[0]
    out = tmp_path / "submission.csv"
    for name, array in (
        ("uint8.npy", images),
        ("float.npy", images[:, None] / np.float32(255)),
        ("int64.npy", images.astype(np.int64)),
    ):
        np.save(tmp_path / name, array)
        args = ["--model", str(tiny_model), "--input", str(tmp_path / name), "--output", str(out)]
        assert predict.main(args) == 0, name
        assert list(pd.read_csv(out)["label"]) == list(expected), name
    for name, array, message in (
        ("unscaled.npy", images.astype(np.float32), "expected float pixels in [0, 1]"),
        ("shape.npy", images[:, :20], "expected images of shape (N, 28, 28)"),
        ("objects.npy", np.array([1, "a"], dtype=object), "not a readable .npy array of numbers"),
    ):
        np.save(tmp_path / name, array, allow_pickle=True)
        args = ["--model", str(tiny_model), "--input", str(tmp_path / name), "--output", str(out)]
        assert predict.main(args) == 1
        line = one_error_line(capsys.readouterr().err, "python -m kannada.predict")
        assert f"error: {name}: {message}" in line and "allow_pickle" not in line


def digit_picture(path: Path, column: int, background: int = 255) -> Path:
    """A picture of a bar (one stroke), dark on light, as a photo of paper would be."""
    picture = np.full((120, 100), background, dtype=np.uint8)
    picture[20:100, column : column + 12] = 255 - background
    Image.fromarray(picture).convert("RGB").save(path)
    return path


def test_predict_reads_pictures_as_the_demo_does(tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "pictures"
    folder.mkdir()
    paths = [
        digit_picture(folder / "a.png", 30),
        digit_picture(folder / "b.JPG", 50),
        digit_picture(folder / "c.jpeg", 60, background=0),
    ]
    (folder / "notes.txt").write_text("not a picture")  # ignored: not a picture's name
    model, preprocessing = predict.load_model(tiny_model)
    digits = np.stack([prepare_digit(path) for path in paths])  # the demo's preparation
    labels, probs = predict.predict_images(model, preprocessing, digits)
    expected = [
        f"{path.name}: {label} ({probs[k, label]:.1%})"
        for k, (path, label) in enumerate(zip(paths, labels, strict=True))
    ]

    assert predict.main(["--model", str(tiny_model), "--input", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines() == expected
    assert not (tmp_path / "submission.csv").exists()  # pictures: printed, not written

    assert predict.main(["--model", str(tiny_model), "--input", str(paths[0])]) == 0
    assert capsys.readouterr().out.splitlines() == expected[:1]

    out = tmp_path / "pictures.csv"
    Image.new("RGB", (50, 50), "white").save(folder / "blank.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert (
        predict.main(["--model", str(tiny_model), "--input", str(folder), "--output", str(out)])
        == 1
    )
    captured = capsys.readouterr()
    assert captured.out.splitlines()[:3] == expected
    assert "python -m kannada.predict: error: 'blank.png': no digit found" in captured.err
    assert (
        "python -m kannada.predict: error: 'broken.png': not an image file we can read"
        in captured.err
    )
    table = pd.read_csv(out)
    assert list(table["file"]) == [path.name for path in paths]
    assert list(table["label"]) == list(labels)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert predict.main(["--model", str(tiny_model), "--input", str(empty)]) == 1
    assert "no PNG or JPEG pictures in this folder" in capsys.readouterr().err


def test_bad_labels_in_a_data_file_through_train(tmp_path, capsys):
    """minicnn's fit refuses bad labels; the command meets them in the file first."""
    folder = write_kaggle_folder(tmp_path / "data", n_train=30)
    lines = (folder / "train.csv").read_text().splitlines()
    lines[5] = "12" + lines[5][1:]
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    assert train.main(quick_run_args(folder, tmp_path / "runs", "x")) == 1
    assert one_error_line(capsys.readouterr().err, TRAIN) == (
        f"{TRAIN}: error: train.csv line 6, field label: expected a whole number in 0-9, found '12'"
    )
    assert not (tmp_path / "runs").exists()
