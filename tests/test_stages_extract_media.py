"""extract for images, MNIST IDX and video features, through the command line; evaluate and plots."""

import json

import h5py
import numpy as np
from PIL import Image

from helpers import run_cli, write_idx


def test_idx_with_one_class_task(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    images = rng.integers(0, 256, size=(200, 4, 4))
    write_idx(tmp_path / "img-idx3-ubyte.gz", images.astype(np.uint8), compress=True)
    write_idx(tmp_path / "lab-idx1-ubyte.gz", labels.astype(np.uint8), compress=True)
    code, out, err = run_cli(capsys, "extract", tmp_path / "img-idx3-ubyte.gz", "--labels", tmp_path / "lab-idx1-ubyte.gz",
                             "--normal-class", "2", "--anomaly-ratio", "0.2", "-o", tmp_path / "m.h5", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rows"] == 50 and summary["anomalies"] == 10
    with h5py.File(tmp_path / "m.h5") as f:
        X, y, classes, ids = f["X"][()], f["y"][()], f["class_label"][()], f["ids"][()]
    assert X.shape == (50, 16) and X.max() <= 1 and X.min() >= 0  # raw pixels in [0, 1], not re-scaled
    assert (classes[y == 0] == 2).all() and (classes[y == 1] != 2).all()
    np.testing.assert_allclose(X[0], images[ids[0]].ravel() / 255, atol=1e-6)  # ids point back into the input


def test_image_folder_skips_unreadable_files(tmp_path, capsys):
    for cls, colour in (("cats", 50), ("dogs", 200)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), colour + i, np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    (tmp_path / "imgs" / "dogs" / "broken.png").write_bytes(b"not a png")
    code, out, err = run_cli(capsys, "extract", tmp_path / "imgs", "--size", "4x5", "--grayscale", "-o", tmp_path / "i.h5", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rows"] == 6 and summary["features"] == 20 and summary["skipped_images"] == 1
    with h5py.File(tmp_path / "i.h5") as f:
        assert [c.decode() for c in f["class_label"][()]] == ["cats"] * 3 + ["dogs"] * 3
        assert f["ids"][0].decode() == "cats/0.png"


def test_video_features_with_annotations_per_video_and_fig3(tmp_path, capsys):
    folder = tmp_path / "c3d"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savetxt(folder / "Fight001_x264_C3D.txt", rng.normal(size=(10, 6)))
    np.save(folder / "Calm002_x264.npy", rng.normal(size=(8, 6)))
    annotations = tmp_path / "ann.txt"
    annotations.write_text("Fight001_x264.mp4  Fighting  32  63  -1  -1\nCalm002_x264.mp4  Normal  -1  -1  -1  -1\n")
    code, out, err = run_cli(capsys, "extract", folder, "--annotations", annotations, "-o", tmp_path / "v.h5", "--json")
    assert code == 0, err
    with h5py.File(tmp_path / "v.h5") as f:
        videos = [v.decode() for v in f["video"][()]]
        y, segments = f["y"][()], f["segment"][()]
    fight = np.array(videos) == "Fight001_x264"
    assert fight.sum() == 10 and (segments[fight] == np.arange(10)).all()
    assert y[fight].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]  # frames 32..63 = segments 2 and 3 of 16 frames
    assert y[~fight].sum() == 0
    code, out, err = run_cli(capsys, "extract", folder, "--annotations", annotations, "--per-video", "-o", tmp_path / "per", "--json")
    assert code == 0, err
    assert json.loads(out)["videos"] == 2 and (tmp_path / "per" / "Fight001_x264.features.h5").exists()


def test_evaluate_writes_metrics_and_plots(tmp_path, capsys, table):
    f, c, m, s = (tmp_path / n for n in ("f.h5", "c.h5", "m.h5", "s.h5"))
    run_cli(capsys, "extract", table, "--label-column", "label", "--anomaly-values", "bad", "-o", f)
    run_cli(capsys, "cluster", f, "--clusters", "6", "-o", c)
    run_cli(capsys, "train", f, c, "-o", m, "--epochs", "6", "--r", "3", "--layers", "6,3", "--reselect-clusters", "5", "--lr", "0.01", "--batch-size", "32")
    run_cli(capsys, "score", m, f, "-o", s)
    code, out, err = run_cli(capsys, "evaluate", s, "--plots", tmp_path / "report", "--json")
    assert code == 0, err
    summary = json.loads(out)
    with h5py.File(m) as model:  # score flags the share the model estimated at training time
        estimated = float(model.attrs["contamination_estimate"])
    assert 0.5 < summary["auroc"] <= 1 and abs(summary["flagged"] - estimated * 440) <= 1
    for name in ("roc.png", "pr.png", "score_histogram.png", "iterations.png", "metrics.json"):
        assert (tmp_path / "report" / name).stat().st_size > 1000 or name == "metrics.json"
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["auroc"] == summary["auroc"]


def test_baseline_scores_share_the_schema(tmp_path, capsys, table):
    f = tmp_path / "f.h5"
    run_cli(capsys, "extract", table, "--label-column", "label", "--anomaly-values", "bad", "-o", f)
    for method in ("iforest", "ae"):
        out_path = tmp_path / f"{method}.h5"
        ae_options = ["--epochs", "20", "--lr", "0.01", "--batch-size", "32", "--layers", "6,3"] if method == "ae" else []
        code, out, err = run_cli(capsys, "baseline", f, "--method", method, *ae_options, "-o", out_path, "--json")
        assert code == 0, err
        assert json.loads(out)["auroc"] > 0.8
        code, out, err = run_cli(capsys, "evaluate", out_path, "--json")
        assert code == 0 and json.loads(out)["flagged"] == 44  # 10 % of 440 by default
    code, _, err = run_cli(capsys, "baseline", f, "--method", "lof")
    assert code == 2 and "--method" in err
