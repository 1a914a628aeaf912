"""benchmarks/recipe_experiments.py: each experiment is the baseline recipe plus its
changes, whatever kannada.train's defaults are, and the table reports mean and range."""

import importlib.util
import json
from pathlib import Path

import pytest

import kannada.augment
import kannada.train

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_experiments.py"


@pytest.fixture
def experiments():
    spec = importlib.util.spec_from_file_location("recipe_experiments", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def launched(monkeypatch):
    """What kannada.train.main would have been called with: its argv and its Augmenter."""
    calls = []

    def fake_main(argv):
        calls.append((argv, kannada.train.Augmenter()))
        return 0

    monkeypatch.setattr(kannada.train, "main", fake_main)
    monkeypatch.setattr(kannada.train, "Augmenter", kannada.train.Augmenter)
    return calls


def _option(argv, name):
    """The value argparse would keep: the last one given."""
    return [argv[i + 1] for i, word in enumerate(argv) if word == name][-1]


def test_baseline_is_the_seed_notebook_recipe_whatever_the_defaults(experiments, launched):
    assert experiments.main(["baseline", "--data-dir", "DIR", "--seed", "2"]) == 0
    ((argv, augmenter),) = launched
    assert _option(argv, "--architecture") == "seed-cnn"
    assert _option(argv, "--name") == "baseline-seed2"
    assert _option(argv, "--seed") == "2"
    assert _option(argv, "--data-dir") == "DIR"
    assert augmenter.rotation_range == 10.0 and augmenter.shear_range == 10.0  # not the defaults
    assert augmenter.geometry == kannada.augment.GEOMETRY


def test_changes_add_up(experiments, launched):
    assert experiments.main(["bn+aug+vshear", "--epochs", "3"]) == 0
    ((argv, augmenter),) = launched
    assert _option(argv, "--architecture") == "seed-cnn-bn"
    assert _option(argv, "--epochs") == "3"  # options the script does not know go to train
    assert (augmenter.rotation_range, augmenter.zoom_range, augmenter.shear_range) == (15, 0.2, 15)
    assert augmenter.geometry == 1


def test_unknown_change_is_refused(experiments, launched, capsys):
    with pytest.raises(SystemExit):
        experiments.main(["bn+wider"])
    assert "wider" in capsys.readouterr().err
    assert launched == []


def test_table_gives_mean_and_range_over_seeds(experiments, tmp_path):
    for seed, (val, dig) in enumerate([(0.99, 0.88), (0.995, 0.89)]):
        folder = tmp_path / f"bn-seed{seed}"
        folder.mkdir()
        metrics = {"validation": {"accuracy": val}, "dig": {"accuracy": dig}}
        metrics["seconds_per_epoch"] = 100 + 20 * seed
        (folder / "metrics.json").write_text(json.dumps(metrics))
    row = experiments.table(str(tmp_path)).splitlines()[-1]
    assert row == (
        "| bn | BatchNorm after every convolution and the first dense layer | 99.25% (99.00-99.50) "
        "| 88.50% (88.00-89.00) | 2 | 110 |"
    )


def test_the_default_recipe_is_bn_plus_aug(experiments, launched):
    """The shipped model's run was `bn+aug --seed 0`; the model card says it is the default
    command's run. True while the experiment's settings equal kannada.train's defaults."""
    assert experiments.main(["bn+aug"]) == 0
    ((argv, augmenter),) = launched
    given = kannada.train.build_parser().parse_args(argv)
    for key, value in kannada.train.DEFAULTS.items():
        if key not in ("out", "name", "data_dir"):  # where the run goes and reads from
            assert getattr(given, key) in (None, value), key
    assert augmenter == kannada.augment.Augmenter()
