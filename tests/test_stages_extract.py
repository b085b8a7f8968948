import numpy as np

from deepuad.stages.extract import extract
from deepuad import artifacts as art


def read(path):
    with art.open_artifact(path, "features") as f:
        return art.read_array(f, "X"), (art.read_array(f, "y") if "y" in f else None), art.read_strings(f, "feature_names")


def test_extract_one_hot_label_and_scaling(tmp_path, table):
    summary = extract(table, label_column="label", anomaly_values=["bad"])
    X, y, names = read(summary["output"])
    assert summary["output"].endswith("data.features.h5")
    assert names == ["a", "b", "c", "d", "proto=icmp", "proto=tcp", "proto=udp"]
    assert y.sum() == 40 and len(y) == 440
    assert X.min() >= 0 and X.max() <= 1  # min-max scaled
    assert np.allclose(X[:, 4:].sum(axis=1), 1)  # exactly one protocol per row


def test_extract_like_encodes_identically_and_counts_unseen(tmp_path, table):
    train = extract(table, label_column="label", anomaly_values=["bad"])
    new = tmp_path / "new.csv"
    new.write_text("a,b,c,d,proto\n1,2,0.5,3,tcp\n1,2,0.5,3,sctp\n9,9,9,9,udp\n")
    summary = extract(new, like=train["output"], output=tmp_path / "new.features.h5")
    X_new, y_new, names = read(summary["output"])
    assert summary["unseen_categories"] == {"proto": 1}
    assert y_new is None  # no label column in new data: fine
    assert names == read(train["output"])[2]
    assert X_new[1, 4:].sum() == 0  # unseen category -> all-zero one-hot
    np.testing.assert_array_equal(X_new[0, :4], X_new[1, :4])
    assert X_new[2, 0] > 1  # scaled with the training min/max, not refitted
    with art.open_artifact(summary["output"]) as f, art.open_artifact(train["output"]) as g:
        assert f.attrs["encoding_fingerprint"] == g.attrs["encoding_fingerprint"]


def test_npz_input(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(50, 3)), y=(rng.random(50) < 0.1).astype(int))
    summary = extract(tmp_path / "d.npz")
    X, y, _ = read(summary["output"])
    assert X.shape == (50, 3) and y is not None and summary["labels"]
