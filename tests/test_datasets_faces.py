"""Tests of the CelebA/MAFL, AFLW and cat-head readers (lmdis.data.celeba, .aflw, .cats).

Each test writes a tiny copy of a dataset IN ITS ORIGINAL FORMAT to tmp_path
(JPEGs with a bright 3x3 dot on every annotated point, the annotation files
as the originals lay them out, a real SQLite database for AFLW), and checks
the prepared items against independent computations: the centre of each dot
found in the prepared image, the paper's recipe redone with PIL, split
membership worked out by hand.
"""
from __future__ import annotations

import sqlite3
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from lmdis.data import dataset_protocol, open_dataset
from lmdis.data import aflw, cats, celeba
from lmdis.data import load_crop

BACKGROUND, DOT, STRIPE = 30, 255, 100  # STRIPE stays below the dot threshold (0.5)


def write_dots(path: Path, width: int, height: int, points_px, channels: int = 3, edge_stripe: int = 0) -> Path:
    """A dark image with a 3x3 bright square centred on each integer point; optionally a grey stripe at the right."""
    pixels = np.full((height, width), BACKGROUND, dtype=np.uint8)
    if edge_stripe:
        pixels[:, width - edge_stripe:] = STRIPE
    for u, v in np.asarray(points_px, dtype=int):
        pixels[max(v - 1, 0):v + 2, max(u - 1, 0):u + 2] = DOT
    if channels == 3:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def dot_centres(image: torch.Tensor) -> np.ndarray:
    """(M, 2) pixel (u, v) centres of the bright blobs of a prepared (C, S, S) image (intensity-weighted)."""
    gray = image.mean(dim=0).numpy().astype(np.float64)
    labels, count = ndimage.label(gray > 0.5)
    weights = np.clip(gray - BACKGROUND / 255, 0, None)
    centres = ndimage.center_of_mass(weights, labels, range(1, count + 1))  # (row, column) pairs
    return np.array([(column, row) for row, column in centres]).reshape(-1, 2)


def assert_dots_at_landmarks(item: dict, tolerance: float = 1.0) -> None:
    """Every landmark of ``item`` is within ``tolerance`` pixels of its own dot, one dot per landmark."""
    image, landmarks = item["image"], item["landmarks"].numpy().astype(np.float64)
    size = image.shape[-1]
    expected = landmarks * size - 0.5  # normalised -> pixel (u, v) of the prepared image
    found = dot_centres(image)
    assert len(found) == len(expected), f"found {len(found)} dots for {len(expected)} landmarks"
    distances = np.linalg.norm(expected[:, None, :] - found[None, :, :], axis=-1)  # (N, M)
    nearest = distances.argmin(axis=1)
    assert len(set(nearest.tolist())) == len(expected), "two landmarks claim the same dot"
    assert distances.min(axis=1).max() <= tolerance, f"landmark-to-dot distances {distances.min(axis=1)}"


def spread_points(rng: np.random.Generator, count: int, low, high, separation: float) -> np.ndarray:
    """``count`` integer points in [low, high) at least ``separation`` apart (rejection sampling)."""
    points: list[np.ndarray] = []
    while len(points) < count:
        candidate = rng.integers(low, high)
        if all(np.linalg.norm(candidate - point) >= separation for point in points):
            points.append(candidate)
    return np.array(points)


# --------------------------------------------------------------------------- CelebA + MAFL

CELEBA_NAMES = [f"{k:06d}.jpg" for k in range(1, 11)]
MAFL_TRAIN = ["000002.jpg", "000004.jpg", "000006.jpg", "000008.jpg"]
MAFL_TEST = ["000009.jpg", "000003.jpg"]  # not sorted: the list order is the item order
PARTITION = {name: ("0" if k < 7 else "1" if k == 7 else "2") for k, name in enumerate(CELEBA_NAMES)}
ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()


def write_celeba(root: Path, partition: bool = True) -> tuple[dict, dict]:
    """A 10-image CelebA in the official layout; returns ({name: (5, 2) pixel points}, {name: (40,) attributes})."""
    rng = np.random.default_rng(0)
    points, attributes = {}, {}
    for name in CELEBA_NAMES:
        points[name] = spread_points(rng, 5, (30, 35), (150, 185), separation=16)
        attributes[name] = rng.choice([-1, 1], size=40)
        write_dots(root / "Img" / "img_align_celeba" / name, 178, 218, points[name])
    header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    lines = [str(len(CELEBA_NAMES)), header]
    lines += [name + "".join(f"{value:6d}" for value in points[name].reshape(-1)) for name in CELEBA_NAMES]
    (root / "Anno").mkdir(parents=True, exist_ok=True)
    (root / "Anno" / "list_landmarks_align_celeba.txt").write_text("\n".join(lines) + "\n")
    # The attribute rows are written in reverse order: alignment must go by file name.
    lines = [str(len(CELEBA_NAMES)), " ".join(ATTRIBUTE_NAMES) + " "]
    lines += [name + "".join(f"{value:3d}" for value in attributes[name]) for name in reversed(CELEBA_NAMES)]
    (root / "Anno" / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition:
        (root / "Eval").mkdir(parents=True, exist_ok=True)
        (root / "Eval" / "list_eval_partition.txt").write_text(
            "".join(f"{name} {PARTITION[name]}\n" for name in CELEBA_NAMES))
    (root / "MAFL").mkdir(parents=True, exist_ok=True)
    (root / "MAFL" / "training.txt").write_text("\n".join(MAFL_TRAIN) + "\n")
    (root / "MAFL" / "testing.txt").write_text("\n".join(MAFL_TEST) + "\n")
    return points, attributes


def names_of(dataset) -> list[str]:
    return [Path(path).name for path in dataset.paths]


def test_celeba_splits_follow_the_paper(tmp_path):
    write_celeba(tmp_path)
    train = celeba.CelebADataset(tmp_path, "train")
    # CelebA training partition (000001-000007) minus the MAFL test images (000003).
    assert names_of(train) == ["000001.jpg", "000002.jpg", "000004.jpg", "000005.jpg", "000006.jpg", "000007.jpg"]
    assert not set(names_of(train)) & set(MAFL_TEST)
    assert names_of(celeba.CelebADataset(tmp_path, "mafl-train")) == MAFL_TRAIN
    assert names_of(celeba.CelebADataset(tmp_path, "mafl-test")) == MAFL_TEST


def test_celeba_train_without_partition_is_everything_but_mafl_test(tmp_path):
    write_celeba(tmp_path, partition=False)
    with pytest.warns(UserWarning, match="list_eval_partition"):
        train = celeba.CelebADataset(tmp_path, "train")
    assert names_of(train) == [name for name in CELEBA_NAMES if name not in MAFL_TEST]


def test_celeba_landmarks_follow_scale_to_100_then_centre_crop_80(tmp_path):
    points, _ = write_celeba(tmp_path)
    dataset = celeba.CelebADataset(tmp_path, "mafl-test")
    for index, name in enumerate(MAFL_TEST):
        # App. G.1 step by step: pixel centre (u + 0.5) scaled by 100/178 and 100/218, minus the 10-pixel crop margin.
        u, v = points[name][:, 0] + 0.5, points[name][:, 1] + 0.5
        expected = np.stack([(u * 100 / 178 - 10) / 80, (v * 100 / 218 - 10) / 80], axis=1)
        np.testing.assert_allclose(dataset.annotated_landmarks()[index], expected, atol=1e-6)
        item = dataset[index]
        assert item["image"].shape == (3, 80, 80) and item["image"].dtype == torch.float32
        assert item["index"] == index
        assert_dots_at_landmarks(item)


def test_celeba_image_equals_resize_100_then_centre_crop(tmp_path):
    write_celeba(tmp_path)
    dataset = celeba.CelebADataset(tmp_path, "mafl-train")
    with Image.open(dataset.paths[1]) as original:
        reference = original.convert("RGB").resize((100, 100), Image.Resampling.BILINEAR).crop((10, 10, 90, 90))
    reference = np.asarray(reference, dtype=np.float32).transpose(2, 0, 1) / 255
    assert np.abs(dataset[1]["image"].numpy() - reference).max() <= 1.5 / 255


def test_celeba_attributes_align_with_items(tmp_path):
    _, attributes = write_celeba(tmp_path)
    dataset = celeba.CelebADataset(tmp_path, "mafl-train")
    names, values = dataset.attributes()
    assert names == ATTRIBUTE_NAMES
    assert values.dtype == np.int8 and values.shape == (len(MAFL_TRAIN), 40)
    np.testing.assert_array_equal(values, np.stack([attributes[name] for name in names_of(dataset)]))


def test_celeba_missing_attributes_is_a_clear_error(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / "Anno" / "list_attr_celeba.txt").unlink()
    dataset = celeba.CelebADataset(tmp_path, "mafl-test")  # attributes are optional until asked for
    with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt"):
        dataset.attributes()


def test_celeba_bad_attribute_value_names_the_file(tmp_path):
    write_celeba(tmp_path)
    path = tmp_path / "Anno" / "list_attr_celeba.txt"
    path.write_text(path.read_text().replace(" -1\n", "  0\n", 1))
    with pytest.raises(ValueError, match="list_attr_celeba.txt.*-1 or 1"):
        celeba.CelebADataset(tmp_path, "mafl-test").attributes()


def test_celeba_missing_landmark_list_names_the_paths_tried(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / "Anno" / "list_landmarks_align_celeba.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_landmarks_align_celeba.txt"):
        celeba.CelebADataset(tmp_path, "mafl-test")


def test_celeba_malformed_landmark_line_names_file_and_line(tmp_path):
    write_celeba(tmp_path)
    path = tmp_path / "Anno" / "list_landmarks_align_celeba.txt"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(maxsplit=1)[0]  # line 5 loses its last number
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"list_landmarks_align_celeba\.txt:5: expected 'filename"):
        celeba.CelebADataset(tmp_path, "mafl-test")


def test_celeba_count_line_must_match(tmp_path):
    write_celeba(tmp_path)
    path = tmp_path / "Anno" / "list_landmarks_align_celeba.txt"
    path.write_text("11" + path.read_text()[2:])
    with pytest.raises(ValueError, match=r"list_landmarks_align_celeba\.txt:1: says 11 entries"):
        celeba.CelebADataset(tmp_path, "train")


def test_celeba_mafl_list_with_unknown_image_is_rejected(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / "MAFL" / "testing.txt").write_text("000003.jpg\n999999.jpg\n")
    with pytest.raises(ValueError, match=r"testing\.txt.*999999\.jpg"):
        celeba.CelebADataset(tmp_path, "mafl-test")


def test_celeba_image_of_the_wrong_size_is_rejected(tmp_path):
    write_celeba(tmp_path)
    write_dots(tmp_path / "Img" / "img_align_celeba" / "000003.jpg", 100, 100, [])
    dataset = celeba.CelebADataset(tmp_path, "mafl-test")
    with pytest.raises(ValueError, match="178x218"):
        dataset[1]


def test_celeba_through_the_registry(tmp_path):
    write_celeba(tmp_path)
    dataset = open_dataset("celeba", tmp_path, split="mafl-test", channels=1)
    assert len(dataset) == len(MAFL_TEST) and dataset[0]["image"].shape == (1, 80, 80)
    assert len(open_dataset("celeba", tmp_path)) == 6  # the first split, "train"
    protocol = dataset_protocol("celeba")
    assert protocol is celeba.PROTOCOL
    assert (protocol.fit_split, protocol.test_split) == ("mafl-train", "mafl-test")
    assert protocol.point_names[:2] == ("left_eye", "right_eye") and protocol.reference_points == (0, 1)
    assert (celeba.IMAGE_SIZE, celeba.PADDED_SIZE) == (80, 96)  # Table 6
    assert celeba.SPLITS[0] == "train" and {protocol.fit_split, protocol.test_split} <= set(celeba.SPLITS)


# --------------------------------------------------------------------------- AFLW

AFLW_FEATURE_TYPES = [  # the 21 AFLW points, in the database's order
    "LeftBrowLeftCorner", "LeftBrowCenter", "LeftBrowRightCorner", "RightBrowLeftCorner", "RightBrowCenter",
    "RightBrowRightCorner", "LeftEyeLeftCorner", "LeftEyeCenter", "LeftEyeRightCorner", "RightEyeLeftCorner",
    "RightEyeCenter", "RightEyeRightCorner", "LeftEar", "NoseLeft", "NoseCenter", "NoseRight", "RightEar",
    "MouthLeftCorner", "MouthCenter", "MouthRightCorner", "ChinCenter"]
PROTOCOL_FEATURES = ["LeftEyeCenter", "RightEyeCenter", "NoseCenter", "MouthLeftCorner", "MouthRightCorner"]

# face_id -> (file_id, rect (x, y, w, h), 5 points, whether all 5 are annotated)
AFLW_FACES = {
    39341: ("image00000.jpg", (8, 14, 32, 32), [(16, 24), (32, 24), (24, 32), (18, 40), (31, 40)], True),
    39342: ("image00001.jpg", (30, 6, 24, 24), [(36, 13), (48, 13), (42, 20), (37, 26), (47, 26)], True),
    39343: ("image00001.jpg", (2, 20, 20, 20), [(6, 26), (17, 26), (11, 32), (7, 37), (16, 37)], True),
    39344: ("image00002.jpg", (10, 10, 30, 30), [(17, 19), (33, 19), (25, 27), (18, 35), (32, 35)], False),
    39345: ("image00003.jpg", (14, 12, 28, 28), [(21, 20), (35, 20), (28, 28), (22, 36), (34, 36)], True),
    39346: ("image00004.jpg", (6, 8, 36, 36), [(15, 20), (33, 20), (24, 29), (16, 38), (32, 38)], True),
}
AFLW_SIZE = (60, 50)


def write_aflw(root: Path) -> None:
    """aflw.sqlite with the original tables (plus flickr/<n>/image*.jpg), faces as in ``AFLW_FACES``."""
    root.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(root / "aflw.sqlite")
    connection.executescript("""
        CREATE TABLE Faces (face_id INTEGER PRIMARY KEY, file_id TEXT, db_id TEXT);
        CREATE TABLE FaceImages (image_id INTEGER PRIMARY KEY, db_id TEXT, file_id TEXT, filepath TEXT,
                                 bw INTEGER, width INTEGER, height INTEGER);
        CREATE TABLE FaceRect (face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER, annot_type_id INTEGER);
        CREATE TABLE FeatureCoords (face_id INTEGER, feature_id INTEGER, x REAL, y REAL, annot_type_id INTEGER);
        CREATE TABLE FeatureCoordTypes (feature_id INTEGER PRIMARY KEY, descr TEXT, code TEXT,
                                        x REAL, y REAL, z REAL);
    """)
    connection.executemany("INSERT INTO FeatureCoordTypes VALUES (?, ?, ?, 0, 0, 0)",
                           [(k, name, name[:4].upper()) for k, name in enumerate(AFLW_FEATURE_TYPES, start=1)])
    images: dict[str, list] = {}
    for face_id, (file_id, rect, points, complete) in AFLW_FACES.items():
        connection.execute("INSERT INTO Faces VALUES (?, ?, 'flickr')", (face_id, file_id))
        connection.execute("INSERT INTO FaceRect VALUES (?, ?, ?, ?, ?, 1)", (face_id, *rect))
        for name, (u, v) in zip(PROTOCOL_FEATURES, points):
            if name == "NoseCenter" and not complete:
                continue  # AFLW leaves invisible points out
            connection.execute("INSERT INTO FeatureCoords VALUES (?, ?, ?, ?, 1)",
                               (face_id, AFLW_FEATURE_TYPES.index(name) + 1, float(u), float(v)))
        # An extra, non-protocol feature (the chin) that must be ignored.
        connection.execute("INSERT INTO FeatureCoords VALUES (?, 21, 1.0, 1.0, 1)", (face_id,))
        images.setdefault(file_id, []).extend(points)
    for image_id, (file_id, points) in enumerate(sorted(images.items())):
        filepath = f"{image_id % 2 * 2}/{file_id}"  # flickr/0/ and flickr/2/
        connection.execute("INSERT INTO FaceImages VALUES (?, 'flickr', ?, ?, 0, ?, ?)",
                           (image_id, file_id, filepath, *AFLW_SIZE))
        write_dots(root / "flickr" / filepath, *AFLW_SIZE, points, edge_stripe=8)
    connection.commit()
    connection.close()


def expected_default_test(file_id: str) -> bool:
    return zlib.crc32(file_id.encode()) / 2 ** 32 < 2_991 / (10_122 + 2_991)


def test_aflw_default_split_is_by_image_crc_and_keeps_complete_faces_only(tmp_path):
    write_aflw(tmp_path)
    complete = [face_id for face_id, face in AFLW_FACES.items() if face[3]]
    test_ids = [face_id for face_id in complete if expected_default_test(AFLW_FACES[face_id][0])]
    train_ids = [face_id for face_id in complete if not expected_default_test(AFLW_FACES[face_id][0])]
    assert test_ids and train_ids  # the fixture exercises both sides
    assert aflw.AFLWDataset(tmp_path, "test").face_ids == test_ids
    assert aflw.AFLWDataset(tmp_path, "train").face_ids == train_ids
    assert 39344 not in test_ids + train_ids  # its nose is not annotated


def test_aflw_crop_follows_the_enlarged_rectangle(tmp_path):
    write_aflw(tmp_path)
    for split in aflw.SPLITS:
        dataset = aflw.AFLWDataset(tmp_path, split)
        for index, face_id in enumerate(dataset.face_ids):
            _, (x, y, w, h), points, _ = AFLW_FACES[face_id]
            # Box: x - w/8 .. x + w + w/8 wide, y - h/4 .. y + h high (App. G.1), pixel centres at u + 0.5.
            expected = (np.array(points) + 0.5 - [x - w / 8, y - h / 4]) / [1.25 * w, 1.25 * h]
            np.testing.assert_allclose(dataset.annotated_landmarks()[index], expected, atol=1e-6)
            assert_dots_at_landmarks(dataset[index])


def test_aflw_crop_outside_the_image_repeats_the_edge(tmp_path):
    write_aflw(tmp_path)
    path = tmp_path / "flickr" / "2" / "image00001.jpg"  # 60x50, grey stripe on columns 52..59, dots at y >= 12
    image, original_size = load_crop(path, (40, -10, 80, 30), 3, 80)
    assert original_size == AFLW_SIZE
    gray = image.mean(dim=0).numpy()
    # Output column c samples source x = 40 + (c + 0.5) / 2: columns 70.. lie past x = 75, beyond the
    # 60-pixel width, and must repeat the stripe; rows r < 19 lie above y = 0 and must repeat the top row.
    np.testing.assert_allclose(gray[:, 70:], STRIPE / 255, atol=6 / 255)
    top_rows = gray[:18]
    np.testing.assert_allclose(top_rows, np.broadcast_to(gray[21:22], top_rows.shape), atol=6 / 255)
    assert abs(gray[:18, :20].mean() - BACKGROUND / 255) < 6 / 255


def test_aflw_split_list_by_face_id_and_by_image(tmp_path):
    write_aflw(tmp_path)
    (tmp_path / "aflw_test.txt").write_text("# MTFL test faces\n39341\n\n2/image00003.jpg\n39344\n")
    with pytest.warns(UserWarning, match="1 face"):
        test = aflw.AFLWDataset(tmp_path, "test")
    assert test.face_ids == [39341, 39345]  # 39344 is listed but incomplete
    assert aflw.AFLWDataset(tmp_path, "train").face_ids == [39342, 39343, 39346]
    (tmp_path / "aflw_train.txt").write_text("image00001.jpg\n")  # both faces of that image
    assert aflw.AFLWDataset(tmp_path, "train").face_ids == [39342, 39343]


def test_aflw_split_list_with_unknown_entry_names_file_and_line(tmp_path):
    write_aflw(tmp_path)
    (tmp_path / "aflw_test.txt").write_text("39341\n\nimage99999.jpg\n")
    with pytest.raises(ValueError, match=r"aflw_test\.txt:3: expected an AFLW face_id"):
        aflw.AFLWDataset(tmp_path, "test")


def test_aflw_missing_or_broken_database(tmp_path):
    with pytest.raises(FileNotFoundError, match="aflw.sqlite"):
        aflw.AFLWDataset(tmp_path, "train")
    (tmp_path / "aflw.sqlite").write_text("not a database")
    with pytest.raises(ValueError, match="aflw.sqlite"):
        aflw.AFLWDataset(tmp_path, "train")


def test_aflw_through_the_registry(tmp_path):
    write_aflw(tmp_path)
    dataset = open_dataset("aflw", tmp_path, split="test", image_size=40)
    assert dataset[0]["image"].shape == (3, 40, 40)
    assert_dots_at_landmarks(dataset[0], tolerance=1.0)
    protocol = dataset_protocol("aflw")
    assert protocol is aflw.PROTOCOL
    assert (protocol.fit_split, protocol.test_split, protocol.reference_points) == ("train", "test", (0, 1))
    assert len(protocol.point_names) == 5 and (aflw.IMAGE_SIZE, aflw.PADDED_SIZE) == (80, 96)


# --------------------------------------------------------------------------- cat heads

# Eyes, mouth, left ear (base, tip, base), right ear (base, tip, base), as in a .cat file.
CAT_POINTS = np.array([(15, 18), (33, 18), (24, 28), (8, 12), (10, 3), (17, 9), (31, 9), (38, 3), (40, 12)])
CAT_IMAGES = {  # relative path -> (pixel offset of the head, image size)
    "CAT_00/00000001_000.jpg": ((0, 0), (50, 40)),
    "CAT_00/00000001_001.jpg": ((6, 9), (56, 48)),
    "CAT_03/00000700_002.jpg": ((8, 2), (60, 50)),
    "CAT_06/00001400_000.jpg": ((2, 4), (50, 40)),
    "CAT_06/00001401_003.jpg": ((7, 8), (50, 40)),  # head near the bottom-right: the crop leaves the photo
}


def write_cats(root: Path) -> dict:
    """CAT_xx folders with jpgs and '9 x1 y1 ... ' .cat files; returns {relative path: (9, 2) pixel points}."""
    points = {}
    for relative, ((du, dv), size) in CAT_IMAGES.items():
        points[relative] = CAT_POINTS + [du, dv]
        write_dots(root / relative, *size, points[relative])
        (root / f"{relative}.cat").write_text("9 " + " ".join(str(v) for v in points[relative].reshape(-1)) + " ")
    write_dots(root / "CAT_00" / "00000002_000.jpg", 50, 40, [])  # an image without annotation: not used
    return points


def test_cat_default_split_is_by_folder(tmp_path):
    write_cats(tmp_path)
    train = cats.CatHeadDataset(tmp_path, "train")
    test = cats.CatHeadDataset(tmp_path, "test")
    assert train.relative_paths == ["CAT_00/00000001_000.jpg", "CAT_00/00000001_001.jpg", "CAT_03/00000700_002.jpg"]
    assert test.relative_paths == ["CAT_06/00001400_000.jpg", "CAT_06/00001401_003.jpg"]


def test_cat_crop_contains_every_point_and_puts_the_dots_there(tmp_path):
    points = write_cats(tmp_path)
    for split in cats.SPLITS:
        dataset = cats.CatHeadDataset(tmp_path, split)
        for index, relative in enumerate(dataset.relative_paths):
            landmarks = dataset.annotated_landmarks()[index]
            # Landmark box 33 x 26 pixels (edges), square side 33 * 1.3 around its centre.
            low, high = points[relative].min(axis=0), points[relative].max(axis=0) + 1
            side = 1.3 * (high - low).max()
            expected = (points[relative] + 0.5 - ((low + high) / 2 - side / 2)) / side
            np.testing.assert_allclose(landmarks, expected, atol=1e-6)
            margin = 0.15 / 1.3  # the points stay this far inside along the longer side
            assert landmarks.min() >= margin - 1e-6 and landmarks.max() <= 1 - margin + 1e-6
            assert_dots_at_landmarks(dataset[index])


def test_cat_split_lists(tmp_path):
    write_cats(tmp_path)
    (tmp_path / "cat_test.txt").write_text("CAT_03/00000700_002.jpg\n# comment\nCAT_00/00000001_000.jpg\n")
    assert cats.CatHeadDataset(tmp_path, "test").relative_paths == ["CAT_00/00000001_000.jpg",
                                                                    "CAT_03/00000700_002.jpg"]
    assert cats.CatHeadDataset(tmp_path, "train").relative_paths == [
        "CAT_00/00000001_001.jpg", "CAT_06/00001400_000.jpg", "CAT_06/00001401_003.jpg"]
    (tmp_path / "cat_test.txt").write_text("CAT_03/00000700_002.jpg\nCAT_05/missing.jpg\n")
    with pytest.raises(ValueError, match=r"cat_test\.txt:2: expected the path of an annotated image"):
        cats.CatHeadDataset(tmp_path, "test")


def test_cat_malformed_annotation_names_file_and_line(tmp_path):
    write_cats(tmp_path)
    (tmp_path / "CAT_06" / "00001400_000.jpg.cat").write_text("9 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 ")
    with pytest.raises(ValueError, match=r"00001400_000\.jpg\.cat:1: expected '9 x1 y1"):
        cats.CatHeadDataset(tmp_path, "test")


def test_cat_missing_folders_or_image(tmp_path):
    with pytest.raises(FileNotFoundError, match="CAT_00"):
        cats.CatHeadDataset(tmp_path, "train")
    write_cats(tmp_path)
    (tmp_path / "CAT_03" / "00000700_002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"00000700_002\.jpg"):
        cats.CatHeadDataset(tmp_path, "train")


def test_cat_through_the_registry_and_its_protocol(tmp_path):
    write_cats(tmp_path)
    dataset = open_dataset("cat", tmp_path, split="test")
    assert len(dataset) == 2 and dataset[0]["landmarks"].shape == (9, 2)
    protocol = dataset_protocol("cat")
    assert protocol is cats.PROTOCOL
    # Footnote 3: 9 points, the 2 "at the ears" not used -- the ear tips (ear-2 of each ear).
    assert protocol.evaluated_points == (0, 1, 2, 3, 5, 6, 8)
    assert [protocol.point_names[k] for k in range(9) if k not in protocol.evaluated_points] == [
        "left_ear_2", "right_ear_2"]
    assert protocol.reference_points == (0, 1) and protocol.point_names[:2] == ("left_eye", "right_eye")
    assert (protocol.fit_split, protocol.test_split) == ("train", "test")


def test_no_warnings_on_a_complete_copy(tmp_path):
    write_celeba(tmp_path / "celeba")
    write_cats(tmp_path / "cats")
    write_aflw(tmp_path / "aflw")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        celeba.CelebADataset(tmp_path / "celeba", "train")
        cats.CatHeadDataset(tmp_path / "cats", "train")
        aflw.AFLWDataset(tmp_path / "aflw", "train")
