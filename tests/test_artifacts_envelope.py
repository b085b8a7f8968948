import h5py
import numpy as np
import pytest

from helpers import write_scores
from deepuad import artifacts as art
from deepuad.errors import InputError, OutputError


def test_round_trip_records_kind_params_and_fingerprint(tmp_path):
    path = tmp_path / "s.h5"
    write_scores(path, [0.1, 0.2], {"p": 1})
    with art.open_artifact(path, "scores") as f:
        assert f.attrs["deepuad_kind"] == "scores"
        assert art.params_of(f) == {"p": 1}
        assert f["score"].attrs["description"].startswith("anomaly score")
        np.testing.assert_array_equal(art.read_array(f, "score"), np.float32([0.1, 0.2]))
        first = f.attrs["fingerprint"]
    write_scores(path, [0.1, 0.2])
    assert art.fingerprint_of(path) == first  # content, not timestamp
    write_scores(path, [0.1, 0.3])
    assert art.fingerprint_of(path) != first


def test_failed_write_leaves_old_file_and_no_litter(tmp_path):
    path = tmp_path / "s.h5"
    write_scores(path, [1.0])
    with pytest.raises(RuntimeError):
        with art.write_artifact(path, "scores", {}, {}) as f:
            art.put(f, "score", np.zeros(3, np.float32))
            raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    with art.open_artifact(path, "scores") as f:
        assert len(f["score"]) == 1


def test_wrong_kind_newer_schema_and_missing_dataset_are_refused(tmp_path):
    path = tmp_path / "s.h5"
    write_scores(path, [1.0])
    with pytest.raises(InputError, match="is a scores artifact, expected model"):
        with art.open_artifact(path, "model"):
            pass
    with h5py.File(path, "a") as f:
        f.attrs["deepuad_schema_version"] = art.SCHEMA_VERSION + 1
    with pytest.raises(InputError, match="newer than this deepuad"):
        with art.open_artifact(path, "scores"):
            pass
    with h5py.File(path, "a") as f:
        f.attrs["deepuad_schema_version"] = art.SCHEMA_VERSION
        del f["is_anomaly"]
    with pytest.raises(InputError, match="'is_anomaly' is missing"):
        with art.open_artifact(path, "scores"):
            pass


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all", b"\x89HDF\r\n\x1a\n" + b"\0" * 50])
def test_garbage_files_are_input_errors(tmp_path, content):
    path = tmp_path / "bad.h5"
    path.write_bytes(content)
    with pytest.raises(InputError):
        with art.open_artifact(path):
            pass


def test_output_checks(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        art.check_output_path(tmp_path / "nope" / "x.h5")
    with pytest.raises(OutputError, match="is a directory"):
        art.check_output_path(tmp_path)


def test_a_second_writer_in_the_same_folder_waits_for_the_first(tmp_path):
    import threading
    import time

    order = []

    def slow_writer():
        with art.write_artifact(tmp_path / "a.h5", "scores", {}, {}) as f:
            order.append("first in")
            art.put(f, "score", np.zeros(3, np.float32))
            art.put(f, "is_anomaly", np.zeros(3, np.int8))
            time.sleep(0.5)
        order.append("first out")

    thread = threading.Thread(target=slow_writer)
    thread.start()
    while not order:
        time.sleep(0.01)
    write_scores(tmp_path / "a.h5", [1.0])  # blocks until the first writer has renamed its file
    order.append("second out")
    thread.join()
    assert order == ["first in", "first out", "second out"]
    with art.open_artifact(tmp_path / "a.h5", "scores") as f:
        assert len(f["score"]) == 1  # the later writer's complete file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]  # no lock or temp files left


@pytest.mark.parametrize("n_features,layers", [(7, (4, 2)), (118, (60, 30, 10)), (3, (1,)), (5, (9, 9, 9, 9, 2))])
def test_weight_shapes_are_the_networks_own(n_features, layers):
    """A model's weights are checked against its architecture without torch (so that ``score``
    of the training rows need not import it): the worked-out shapes must be the network's."""
    from deepuad.artifacts.model import weight_shapes
    from deepuad.estimators.autoencoder import Autoencoder

    network = Autoencoder(n_features, layers, "relu").state_dict()
    assert weight_shapes(n_features, layers) == {f"weights/{name}": tuple(value.shape) for name, value in network.items()}
