"""Tests for the media readers of deepuad.inputs (mnist, images, torchscript, video, one_class): every
input is written by the test itself, except the two checks against the real MNIST / UCF-Crime files in
../shared/data next to the repository, read through conftest's ``shared_data`` fixture (skipped only
where that folder is absent)."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import write_idx
from deepuad.inputs.images import load_image_batch, read_image_folder
from deepuad.inputs.media import MediaError
from deepuad.inputs.mnist import read_idx, read_mnist
from deepuad.inputs.one_class import one_class_task
from deepuad.inputs.torchscript import extract_image_folder, extract_with_torchscript
from deepuad.inputs.video import read_ucf_annotations, read_video_features, segment_labels

# torch.jit.script/load are deprecated in recent torch, but TorchScript is the format asked for.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


# ---------------------------------------------------------------------------- IDX / MNIST


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_round_trips_plain_and_gzipped(tmp_path, compress, dtype):
    array = (np.arange(2 * 3 * 4) * 7 - 20).reshape(2, 3, 4).astype(dtype)
    # A misleading name: the format is detected from the magic bytes, not the extension.
    path = write_idx(tmp_path / "data.idx.gz", array, compress)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_declaring_a_billion_images_fails_without_allocating_them(tmp_path, compress):
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 10**9, 28, 28)
    path = tmp_path / "huge.idx"
    data = header + bytes(100 - len(header))
    path.write_bytes(gzip.compress(data) if compress else data)
    tracemalloc.start()
    try:
        with pytest.raises(MediaError) as caught:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # the declared size is 784 GB
    assert caught.value.path == str(path)
    if compress:  # rejected from the header alone, before decompressing anything
        assert "gzip file can hold" in caught.value.problem
    assert str(caught.value).startswith(f"{path}: ")


def test_truncated_gzip_idx_is_read_in_chunks_not_at_its_declared_size(tmp_path):
    # The declared 78 MB is plausible for a 256 KB gzip file of incompressible data, so only
    # reading in chunks (not f.read(declared size)) keeps memory to what is really there.
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 10**5, 28, 28)
    payload = np.random.default_rng(0).integers(0, 256, 2**18, dtype=np.uint8).tobytes()
    path = tmp_path / "truncated.gz"
    path.write_bytes(gzip.compress(header + payload))
    tracemalloc.start()
    try:
        with pytest.raises(MediaError, match="truncated"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_idx_truncated_trailing_and_wrong_magic_raise_media_error(tmp_path):
    images = np.zeros((5, 2, 2), np.uint8)
    good = write_idx(tmp_path / "good", images, compress=False).read_bytes()
    cases = {
        "truncated": good[:-3],
        "trailing": good + b"\x00",
        "wrong_magic": b"\x01\x02" + good[2:],
        "bad_dtype": good[:2] + b"\x42" + good[3:],
        "short_header": good[:6],
        "gzip_cut": gzip.compress(good)[:-12],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(MediaError):
            read_idx(path)
    with pytest.raises(MediaError, match="no such file"):
        read_idx(tmp_path / "missing")


def test_read_mnist_scales_pixels_and_checks_counts(tmp_path):
    images = np.array([[[0, 255], [51, 102]], [[255, 255], [0, 0]], [[1, 2], [3, 4]]], np.uint8)
    images_path = write_idx(tmp_path / "images", images, compress=True)
    labels_path = write_idx(tmp_path / "labels", np.array([4, 0, 9], np.uint8), compress=False)
    X, class_label = read_mnist(images_path, labels_path)
    assert X.dtype == np.float32 and X.shape == (3, 4)
    np.testing.assert_allclose(X[0], [0.0, 1.0, 0.2, 0.4])
    assert class_label.dtype == np.int64 and class_label.tolist() == [4, 0, 9]
    assert read_mnist(images_path)[1] is None

    two_labels = write_idx(tmp_path / "two", np.array([1, 2], np.uint8), compress=False)
    with pytest.raises(MediaError, match="2 labels"):
        read_mnist(images_path, two_labels)
    with pytest.raises(MediaError, match="label file"):
        read_mnist(labels_path)  # the two paths swapped


def test_real_mnist_test_labels_hold_982_fours(shared_data):
    labels = read_idx(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,)
    assert int((labels == 4).sum()) == 982
    indices, y = one_class_task(labels, "4", 0.05, seed=0)
    assert int((y == 0).sum()) == 982 and int(y.sum()) == 52
    per_digit = np.bincount(labels[indices][y == 1], minlength=10)
    assert per_digit[4] == 0 and sorted(per_digit[per_digit > 0]) == [5, 5] + [6] * 7


# ---------------------------------------------------------------------------- image folders


@pytest.fixture()
def image_root(tmp_path) -> Path:
    """cat/ (one nested), dog/ (one corrupt), one image in the root, and a non-image file."""
    root = tmp_path / "images"
    (root / "cat" / "indoor").mkdir(parents=True)
    (root / "dog").mkdir()
    (root / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (10, 6), (255, 0, 0)).save(root / "cat" / "red.png")
    Image.new("RGB", (5, 5), (0, 0, 255)).save(root / "cat" / "indoor" / "blue.BMP")
    Image.new("L", (8, 8), 128).save(root / "dog" / "gray.png")
    Image.new("RGB", (4, 4), (0, 255, 0)).save(root / "dog" / "green.jpg", quality=100)
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    Image.new("RGB", (3, 3), (255, 255, 255)).save(root / "top.png")
    Image.new("RGB", (3, 3)).save(root / ".ipynb_checkpoints" / "red-checkpoint.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_reads_classes_ids_and_skips_corrupt_files(image_root):
    folder = read_image_folder(image_root, size=(4, 6))
    assert folder.ids.tolist() == [
        "cat/indoor/blue.BMP", "cat/red.png", "dog/gray.png", "dog/green.jpg", "top.png"]
    assert folder.class_label.tolist() == ["cat", "cat", "dog", "dog", ""]
    assert folder.X.dtype == np.float32 and folder.X.shape == (5, 4 * 6 * 3)
    assert [path for path, _ in folder.skipped] == ["dog/broken.png"]
    assert folder.skipped[0][1]  # a reason is given

    pixels = folder.X.reshape(5, 4, 6, 3)  # channel-last
    np.testing.assert_allclose(pixels[0], np.broadcast_to([0, 0, 1], (4, 6, 3)))
    np.testing.assert_allclose(pixels[1], np.broadcast_to([1, 0, 0], (4, 6, 3)))
    np.testing.assert_allclose(pixels[2], 128 / 255, atol=1e-6)  # L converted to RGB
    np.testing.assert_allclose(pixels[3], np.broadcast_to([0, 1, 0], (4, 6, 3)), atol=0.03)

    gray = read_image_folder(image_root, size=(4, 6), grayscale=True)
    assert gray.X.shape == (5, 24)
    np.testing.assert_allclose(gray.X[2], 128 / 255, atol=1e-6)


def test_image_size_is_height_then_width(tmp_path):
    halves = np.zeros((2, 6, 3), np.uint8)
    halves[:, 3:] = 255  # left half black, right half white
    Image.fromarray(halves).save(tmp_path / "halves.png")
    folder = read_image_folder(tmp_path, size=(2, 6))
    np.testing.assert_array_equal(folder.X.reshape(2, 6, 3), halves / 255)
    batch = load_image_batch([tmp_path / "halves.png"], size=(2, 6))
    np.testing.assert_array_equal(batch[0], halves.transpose(2, 0, 1) / 255)


def test_image_folder_errors(tmp_path):
    with pytest.raises(MediaError, match="no such folder"):
        read_image_folder(tmp_path / "missing", size=(4, 6))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="no image files"):
        read_image_folder(tmp_path / "empty", size=(4, 6))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(MediaError, match="none of the 1"):
        read_image_folder(tmp_path / "bad", size=(4, 6))


def test_load_image_batch_matches_folder_pixels_in_nchw(image_root):
    folder = read_image_folder(image_root, size=(4, 6))
    paths = [image_root / i for i in folder.ids]
    batch = load_image_batch(paths, size=(4, 6), grayscale=False)
    assert batch.shape == (5, 3, 4, 6) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch.transpose(0, 2, 3, 1).reshape(5, -1), folder.X)
    with pytest.raises(MediaError, match="broken.png"):
        load_image_batch([image_root / "dog" / "broken.png"], size=(4, 6), grayscale=False)


# ---------------------------------------------------------------------------- TorchScript


def scripted_model(path: Path, in_features: int, out_features: int = 5) -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    model = torch.jit.script(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_features, out_features)))
    model.save(str(path))
    return model


def test_torchscript_features_equal_the_model_applied_directly(tmp_path):
    model = scripted_model(tmp_path / "model.pt", 3 * 4 * 4)
    images = np.random.default_rng(0).random((7, 3, 4, 4), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()

    features = extract_with_torchscript(tmp_path / "model.pt", images, batch_size=3)
    assert features.shape == (7, 5) and features.dtype == np.float32
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)

    batches = iter([images[:2], images[2:]])
    streamed = extract_with_torchscript(str(tmp_path / "model.pt"), batches)
    np.testing.assert_allclose(streamed, expected, rtol=1e-5, atol=1e-6)


def test_torchscript_model_saved_in_training_mode_runs_in_eval_mode(tmp_path):
    model = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5)))
    assert model.training  # saved as it is, dropout active
    model.save(str(tmp_path / "dropout.pt"))
    images = np.ones((4, 1, 3, 3), np.float32)
    features = extract_with_torchscript(tmp_path / "dropout.pt", images)
    np.testing.assert_array_equal(features, images.reshape(4, 9))


def test_non_torchscript_files_and_unusable_outputs_raise_media_error(tmp_path):
    images = np.zeros((2, 3, 4, 4), np.float32)
    (tmp_path / "garbage.pt").write_bytes(b"definitely not a zip archive")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "state_dict.pt")
    for name in ["garbage.pt", "state_dict.pt", "missing.pt"]:
        with pytest.raises(MediaError) as caught:
            extract_with_torchscript(tmp_path / name, images)
        assert caught.value.path == str(tmp_path / name)

    scripted_model(tmp_path / "wrong_width.pt", in_features=10)
    with pytest.raises(MediaError, match="failed on a batch"):
        extract_with_torchscript(tmp_path / "wrong_width.pt", images)

    class ProducesNaN(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) / 0.0 * 0.0

    torch.jit.script(ProducesNaN()).save(str(tmp_path / "nan.pt"))
    with pytest.raises(MediaError, match="NaN"):
        extract_with_torchscript(tmp_path / "nan.pt", images)


def test_extract_image_folder_streams_batches_and_skips_corrupt_images(image_root, tmp_path):
    model = scripted_model(tmp_path / "model.pt", 3 * 4 * 6, out_features=2)
    result = extract_image_folder(
        tmp_path / "model.pt", image_root, size=(4, 6), batch_size=2)
    pixels = read_image_folder(image_root, size=(4, 6))
    assert result.ids.tolist() == pixels.ids.tolist()
    assert result.class_label.tolist() == pixels.class_label.tolist()
    assert [p for p, _ in result.skipped] == ["dog/broken.png"]
    with torch.no_grad():
        expected = model(torch.from_numpy(
            pixels.X.reshape(-1, 4, 6, 3).transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(result.X, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- video features


def test_video_features_text_and_npy_with_annotations(tmp_path):
    folder = tmp_path / "features"
    folder.mkdir()
    first = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    second = -np.arange(8, dtype=np.float32).reshape(2, 4)
    np.savetxt(folder / "Arson010_x264_C3D.txt", first)
    np.save(folder / "Normal_Videos_003_x264.npy", second)
    (folder / "README.md").write_text("ignored: does not match the patterns")

    videos = read_video_features(folder)
    assert videos.X.dtype == np.float32 and videos.X.shape == (5, 4)
    np.testing.assert_allclose(videos.X, np.vstack([first, second]), rtol=1e-6)
    assert videos.video.tolist() == ["Arson010_x264"] * 3 + ["Normal_Videos_003_x264"] * 2
    assert videos.segment.dtype == np.int64 and videos.segment.tolist() == [0, 1, 2, 0, 1]
    assert [Path(f).name for f in videos.files] == [
        "Arson010_x264_C3D.txt", "Normal_Videos_003_x264.npy"]

    annotation_file = tmp_path / "annotations.txt"
    annotation_file.write_text(
        "Arson010_x264.mp4  Arson  20  40  -1  -1  \n"
        "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1  \n"
        "\n"
        "Vandalism017_x264.mp4  Vandalism  0  0  47  47\n")
    annotations = read_ucf_annotations(annotation_file)
    assert annotations == {
        "Arson010_x264": [(20, 40)],
        "Normal_Videos_003_x264": [],
        "Vandalism017_x264": [(0, 0), (47, 47)],
    }
    # 16 frames per segment: frames 0-15, 16-31, 32-47; interval 20-40 touches segments 1, 2.
    assert segment_labels(3, annotations["Arson010_x264"]).tolist() == [0, 1, 1]
    assert segment_labels(2, annotations["Normal_Videos_003_x264"]).tolist() == [0, 0]
    assert segment_labels(4, [(0, 0), (47, 47)]).tolist() == [1, 0, 1, 0]
    assert segment_labels(3, [(16, 16)]).dtype == np.int8
    # 32-segment averaged files: frames_per_segment = n_frames / 32 may be fractional.
    # With 2.5 frames per segment, segment 0 holds frames 0-2 and segment 1 frames 3-4.
    assert segment_labels(3, [(2, 2)], frames_per_segment=2.5).tolist() == [1, 0, 0]
    assert segment_labels(3, [(3, 5)], frames_per_segment=2.5).tolist() == [0, 1, 1]
    # Fewer frames than segments: segment 1 covers [0.5, 1), which holds no frame at all.
    assert segment_labels(3, [(0, 1)], frames_per_segment=0.5).tolist() == [1, 0, 1]


def test_video_features_reject_mismatched_widths_and_bad_files(tmp_path):
    np.savetxt(tmp_path / "a.txt", np.ones((2, 4)))
    np.save(tmp_path / "b.npy", np.ones((2, 3)))
    with pytest.raises(MediaError) as caught:
        read_video_features(tmp_path)
    assert caught.value.path == str(tmp_path / "b.npy") and "3 features" in caught.value.problem

    (tmp_path / "b.npy").unlink()
    (tmp_path / "c.txt").write_text("1 2 3 4\n1 2 x 4\n")
    with pytest.raises(MediaError, match="c.txt"):
        read_video_features(tmp_path)
    with pytest.raises(MediaError, match="no feature files"):
        read_video_features(tmp_path, pattern="*.csv")

    bad = tmp_path / "bad_annotations.txt"
    bad.write_text("Arson010_x264.mp4 Arson 20 x -1 -1\n")
    with pytest.raises(MediaError, match="line 1"):
        read_ucf_annotations(bad)


def test_real_ucf_crime_features_and_annotations(shared_data):
    features_path = shared_data / "ucf_crime" / "Arrest002_x264_C3D.txt.gz"
    annotations_path = shared_data / "ucf_crime" / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"
    videos = read_video_features(features_path)
    assert videos.X.shape == (32, 4096)
    assert set(videos.video.tolist()) == {"Arrest002_x264"}
    annotations = read_ucf_annotations(annotations_path)
    assert len(annotations) == 290
    assert sum(1 for intervals in annotations.values() if not intervals) == 150
    assert annotations["Arson010_x264"] == [(885, 1230)]


# ---------------------------------------------------------------------------- one-class tasks


def test_one_class_task_counts_ratio_balance_and_determinism():
    # Class 0 is normal (200 samples); classes 1-3 have plenty, class 4 only 2 samples.
    labels = np.repeat([0, 1, 2, 3, 4], [200, 50, 50, 50, 2])
    np.random.default_rng(1).shuffle(labels)
    indices, y = one_class_task(labels, 0, 0.1, seed=3)

    assert indices.dtype == np.int64 and y.dtype == np.int8
    assert np.all(np.diff(indices) > 0)  # sorted, no duplicates
    assert int((y == 0).sum()) == 200 and np.all(labels[indices][y == 0] == 0)
    assert int(y.sum()) == 22  # round(200 * 0.1 / 0.9)
    assert abs(y.mean() - 0.1) < 0.01
    per_class = np.bincount(labels[indices][y == 1], minlength=5)
    # Class 4 gives all it has; the other 20 are spread evenly over classes 1-3.
    assert per_class[4] == 2 and sorted(per_class[1:4]) == [6, 7, 7]

    again = one_class_task(labels, 0, 0.1, seed=3)
    np.testing.assert_array_equal(again[0], indices)
    other_seed = one_class_task(labels, 0, 0.1, seed=4)
    assert not np.array_equal(other_seed[0], indices)

    # A class given as a string (from the command line) matches integer labels.
    from_cli = one_class_task(labels, "0", 0.1, seed=3)
    np.testing.assert_array_equal(from_cli[0], indices)
    names = np.array(["cat", "dog", "dog", "cat", "bird", "cat", "fish"])
    str_indices, str_y = one_class_task(names, "cat", 0.25, seed=0)
    assert str_indices.tolist() == sorted(str_indices.tolist())
    assert int((str_y == 0).sum()) == 3 and int(str_y.sum()) == 1


def test_one_class_task_leftover_anomalies_go_to_random_classes():
    # 4 anomalies over 3 equal classes: one class gets a second sample, chosen by the seed
    # rather than always the first class in sorted order.
    labels = np.repeat([0, 1, 2, 3], [36, 10, 10, 10])
    lucky_classes = set()
    for seed in range(12):
        indices, y = one_class_task(labels, 0, 0.1, seed=seed)
        per_class = np.bincount(labels[indices][y == 1], minlength=4)
        assert sorted(per_class[1:]) == [1, 1, 2]
        lucky_classes.add(int(np.argmax(per_class)))
    assert len(lucky_classes) > 1


def test_one_class_task_rejects_bad_parameters():
    labels = np.array([0, 0, 0, 1, 2])
    with pytest.raises(ValueError, match="does not occur"):
        one_class_task(labels, 7, 0.1, seed=0)
    for ratio in [0.0, 1.0, -0.2, 1.5]:
        with pytest.raises(ValueError, match="anomaly_ratio"):
            one_class_task(labels, 0, ratio, seed=0)
    with pytest.raises(ValueError, match="only 2"):
        one_class_task(labels, 0, 0.9, seed=0)  # needs 27 anomalies
