"""kannada.export: a prediction-only copy of a model predicts exactly as the original."""

import numpy as np

from kannada import export
from kannada.model import build_model
from kannada.predict import load_model, predict_images
from kannada.preprocess import Preprocessing, scale_images
from kannada.zca import ZCA


def test_export_drops_optimizer_state_and_predicts_the_same(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    preprocessing = Preprocessing(ZCA().fit(scale_images(images)))
    model = build_model(seed=0)
    model.compile()
    model.fit(preprocessing(images), np.arange(40) % 10, batch_size=20, epochs=1, seed=0, verbose=0)
    # an older file layout: the full ZCA matrix, and Adam's state
    metadata = {**preprocessing.to_metadata(), "note": "kept"}
    metadata["zca_matrix"] = preprocessing.zca.matrix
    del metadata["zca_matrix_upper"]
    source = model.save(tmp_path / "model.npz", metadata=metadata)

    assert export.main(["--model", str(source), "--output", str(tmp_path / "small.npz")]) == 0
    small = tmp_path / "small.npz"
    assert small.stat().st_size < 0.45 * source.stat().st_size
    before, after = load_model(source), load_model(small)
    np.testing.assert_array_equal(
        predict_images(*after, images)[1], predict_images(*before, images)[1]
    )
    assert after[0].metadata["note"] == "kept"
    assert after[0].optimizer.iterations == 0


def test_export_of_a_missing_file_is_a_clear_error(tmp_path, capsys):
    assert (
        export.main(["--model", str(tmp_path / "none.npz"), "--output", str(tmp_path / "o.npz")])
        == 1
    )
    assert "none.npz: no such model file" in capsys.readouterr().err
