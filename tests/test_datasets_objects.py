"""Tests of the object datasets (cars, shoes, Human3.6M, AwA animals) on tiny files in their real formats.

Images carry bright Gaussian dots at the annotated points; the prepared
images are searched for those dots (scipy.ndimage centroids) and compared
with the landmarks the datasets report. Expected crops are written out by
hand from the rules in each module's docstring.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from scipy import ndimage

from lmdis.data import dataset_protocol, open_dataset
from lmdis.data import animals, cars, human36m, shoes


# --------------------------------------------------------------------------- helpers

def dotted_image(width: int, height: int, points, background=(20, 20, 20), sigma: float = 3.0,
                 channel: int | None = None) -> np.ndarray:
    """uint8 (H, W, 3): ``background`` plus a Gaussian dot (peak 255) at each pixel (u, v).

    ``channel`` None brightens all channels, else only that one.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    dots = np.zeros((height, width))
    for u, v in points:
        dots = np.maximum(dots, np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * sigma ** 2)))
    pixels = np.tile(np.asarray(background, dtype=np.float64), (height, width, 1))
    targets = range(3) if channel is None else [channel]
    for c in targets:
        pixels[..., c] = pixels[..., c] + (255 - pixels[..., c]) * dots
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(pixels).save(path, **options)
    return path


def dot_centres(channel: torch.Tensor, background: float) -> np.ndarray:
    """(n, 2) pixel (x, y) centroids of the bright blobs of a (S, S) channel, brightness-weighted."""
    signal = np.clip(channel.numpy().astype(np.float64) - background, 0, None)
    labels, count = ndimage.label(signal > 0.3 * signal.max())
    centres = ndimage.center_of_mass(signal, labels, range(1, count + 1))  # (row, column) each
    return np.array([(column, row) for row, column in centres])


def assert_dots_at(channel: torch.Tensor, background: float, landmarks, tolerance: float = 1.0):
    """Every landmark (normalised) has a dot within ``tolerance`` pixels, and there is no other dot."""
    size = channel.shape[-1]
    expected = np.asarray(landmarks, dtype=np.float64) * size - 0.5  # normalised -> pixel centres
    found = dot_centres(channel, background)
    assert len(found) == len(expected), f"found {len(found)} dots, expected {len(expected)}"
    for point in expected:
        distances = np.linalg.norm(found - point, axis=1)
        assert distances.min() <= tolerance, f"no dot near {point}: nearest {found[distances.argmin()]}"


# --------------------------------------------------------------------------- PASCAL3D+ cars

CAR_ANCHOR_NAMES = ("left_front_wheel", "left_back_wheel", "right_front_wheel", "right_back_wheel",
                    "upper_left_windshield", "upper_right_windshield", "upper_left_rearwindow",
                    "upper_right_rearwindow", "left_front_light", "right_front_light", "left_back_trunk",
                    "right_back_trunk")
# (u, v) 0-based pixels in 240x160 images, in the order front wheel, back wheel, front light, back trunk,
# upper windshield, upper rear window
FACING_RIGHT = np.array([[170, 120], [50, 120], [200, 90], [30, 85], [150, 50], [80, 50]], dtype=np.float64)
FACING_LEFT = np.array([[60, 118], [175, 121], [28, 92], [205, 88], [90, 48], [160, 52]], dtype=np.float64)
CAR_WIDTH, CAR_HEIGHT = 240, 160


def side_names(side: str) -> list[str]:
    return [f"{side}_front_wheel", f"{side}_back_wheel", f"{side}_front_light", f"{side}_back_trunk",
            f"upper_{side}_windshield", f"upper_{side}_rearwindow"]


def car_object(azimuth, side: str, points, hidden=(), guessed=(), coarse=None, kind="car") -> dict:
    """A PASCAL3D+ object: the six anchors of ``side`` at ``points`` (stored 1-based), the rest unseen.

    ``hidden`` anchors are occluded (status 3) without a location, ``guessed`` ones occluded with one.
    """
    located = dict(zip(side_names(side), points))
    anchors = {}
    for name in CAR_ANCHOR_NAMES:
        if name in located and name not in hidden:
            location = np.array(located[name], dtype=np.float64) + 1.0
            anchors[name] = {"location": location, "status": 3 if name in guessed else 1}
        else:  # not visible: PASCAL3D+ leaves the location empty
            anchors[name] = {"location": np.zeros((0, 0)), "status": 3 if name in hidden else 5}
    empty = np.zeros((0, 0))
    viewpoint = {"azimuth": empty if azimuth is None else float(azimuth),
                 "azimuth_coarse": empty if coarse is None else float(coarse), "elevation": 5.0, "distance": 6.0}
    return {"class": kind, "bbox": np.array([10.0, 10.0, 230.0, 150.0]), "viewpoint": viewpoint, "anchors": anchors}


def person_object() -> dict:
    empty = np.zeros((0, 0))
    return {"class": "person", "bbox": np.array([1.0, 1.0, 20.0, 40.0]),
            "viewpoint": {"azimuth": 90.0, "azimuth_coarse": 90.0, "elevation": 0.0, "distance": 1.0},
            "anchors": empty}


def write_record(path: Path, filename: str, folder: str, objects: list[dict]) -> Path:
    """``record`` as in PASCAL3D+: a struct whose ``objects`` is a 1xN struct array."""
    fields = ["class", "bbox", "viewpoint", "anchors"]
    array = np.empty((1, len(objects)), dtype=[(field, object) for field in fields])
    for index, item in enumerate(objects):
        for field in fields:
            array[0, index][field] = item[field]
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"record": {"filename": filename, "folder": folder, "database": "ImageNet",
                                       "imgsize": np.array([CAR_WIDTH, CAR_HEIGHT, 3.0]), "objects": array}})
    return path


def names_in(split: str, prefix: str, count: int) -> list[str]:
    """The first ``count`` names prefix_00000, ... that the 1-in-10 CRC-32 rule puts in ``split``."""
    chosen = []
    for number in range(10_000):
        name = f"{prefix}_{number:05d}"
        if (zlib.crc32(name.encode()) % 10 == 0) == (split == "test"):
            chosen.append(name)
            if len(chosen) == count:
                return chosen
    raise AssertionError("not enough names")


@pytest.fixture(scope="module")
def car_root(tmp_path_factory) -> Path:
    """Three ImageNet files (train) and one PASCAL file (test).

    Kept: A (az 92, left side, faces right), B (az 268, right side, faces left),
    F (no fine azimuth, coarse 275, right side), G (test, az 85, left side).
    Dropped: C (az 45), D and D' (a left anchor occluded, without / with a location), E (az 106),
    a person.
    """
    root = tmp_path_factory.mktemp("PASCAL3D+_release1.1")
    first, second, third = (f"{name}.JPEG" for name in names_in("train", "n02814533", 3))
    test_name = names_in("test", "2008", 1)[0] + ".jpg"
    files = [
        ("car_imagenet", first, [car_object(92, "left", FACING_RIGHT)], FACING_RIGHT),  # single object
        ("car_imagenet", second, [car_object(268, "right", FACING_LEFT), car_object(45, "left", FACING_RIGHT)],
         FACING_LEFT),
        ("car_imagenet", third, [car_object(90, "left", FACING_RIGHT, hidden=("left_front_light",)),
                                 car_object(90, "left", FACING_RIGHT, guessed=("left_back_trunk",)),
                                 car_object(106, "left", FACING_RIGHT),
                                 car_object(None, "right", FACING_LEFT, coarse=275)], FACING_LEFT),
        ("car_pascal", test_name, [person_object(), car_object(85, "left", FACING_RIGHT)], FACING_RIGHT),
    ]
    for folder, filename, objects, drawn in files:
        write_record(root / "Annotations" / folder / (Path(filename).stem + ".mat"), filename, folder, objects)
        save(root / "Images" / folder / filename, dotted_image(CAR_WIDTH, CAR_HEIGHT, drawn, sigma=4.0))
    return root


def test_profile_azimuth_rule():
    assert cars.is_profile_azimuth(90) and cars.is_profile_azimuth(270) and cars.is_profile_azimuth(-88)
    assert cars.is_profile_azimuth(105) and cars.is_profile_azimuth(255.5)
    assert not cars.is_profile_azimuth(106) and not cars.is_profile_azimuth(0) and not cars.is_profile_azimuth(180)
    assert not cars.is_profile_azimuth(45)


def test_cars_keep_only_profile_cars_with_six_visible_points(car_root):
    train = cars.PascalCarsDataset(car_root, "train")
    test = cars.PascalCarsDataset(car_root, "test")
    assert len(train) == 3 and len(test) == 1
    assert train.sides == ["left", "right", "right"] and test.sides == ["left"]
    assert [source.rsplit("record.", 1)[1] for source in train.sources] == [
        "objects(1)", "objects(1)", "objects(4)"]
    assert [source.rsplit("record.", 1)[1] for source in test.sources] == ["objects(2)"]
    assert Path(test.paths[0]).parent.name == "car_pascal"


def test_pascal_coordinates_are_one_based(car_root):
    mat = sorted((car_root / "Annotations" / "car_imagenet").glob("*.mat"))[0]
    filename, found = cars.read_profile_cars(mat)
    assert filename == mat.stem + ".JPEG" and len(found) == 1
    index, side, points = found[0]
    assert (index, side) == (0, "left")
    np.testing.assert_array_equal(points, FACING_RIGHT)  # stored + 1, read back 0-based


def test_car_landmarks_follow_the_margin_box_by_hand(car_root):
    train = cars.PascalCarsDataset(car_root, "train")
    # FACING_RIGHT spans u 30..200, v 50..120 -> edges 30.5..200.5, 50.5..120.5; margin 0.1 * 170 = 17
    left, top, right, bottom = 13.5, 33.5, 217.5, 137.5
    expected = (FACING_RIGHT + 0.5 - [left, top]) / [right - left, bottom - top]
    item = train[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    np.testing.assert_allclose(item["landmarks"].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(train.annotated_landmarks()[0], expected, atol=1e-6)


def test_car_dots_land_on_the_landmarks(car_root):
    for split in cars.SPLITS:
        dataset = cars.PascalCarsDataset(car_root, split)
        for index in range(len(dataset)):
            item = dataset[index]
            assert_dots_at(item["image"][1], 20 / 255, item["landmarks"])
    # enlarged crops: one original pixel is 1.25 (x) and 2.5 (y) output pixels here
    large = cars.PascalCarsDataset(car_root, "train", image_size=256)[0]
    assert_dots_at(large["image"][1], 20 / 255, large["landmarks"], tolerance=0.6)


def test_cars_face_left_flips_right_facing_cars(car_root):
    plain = cars.PascalCarsDataset(car_root, "train")
    turned = cars.PascalCarsDataset(car_root, "train", face_left=True)
    assert turned.flipped.tolist() == [True, False, False]  # A faces right (front wheel right of back wheel)
    flipped, original = turned[0], plain[0]
    torch.testing.assert_close(flipped["image"], original["image"].flip(-1))
    np.testing.assert_allclose(flipped["landmarks"][:, 0], 1 - original["landmarks"][:, 0], atol=1e-6)
    np.testing.assert_allclose(flipped["landmarks"][:, 1], original["landmarks"][:, 1])
    assert flipped["landmarks"][0, 0] < flipped["landmarks"][1, 0]  # front wheel now left of the back wheel
    torch.testing.assert_close(turned[1]["image"], plain[1]["image"])
    assert_dots_at(flipped["image"][0], 20 / 255, flipped["landmarks"])


def test_car_registry_and_protocol(car_root):
    dataset = open_dataset("car", car_root, split="test")
    assert len(dataset) == 1 and dataset[0]["image"].shape == (3, 64, 64)
    protocol = dataset_protocol("car")
    assert protocol is cars.PROTOCOL and protocol.normaliser == "points"
    assert [protocol.point_names[i] for i in protocol.reference_points] == ["front_wheel", "back_wheel"]
    assert len(protocol.point_names) == 6 and (cars.IMAGE_SIZE, cars.PADDED_SIZE) == (64, 96)
    assert (protocol.fit_split, protocol.test_split) == ("train", "test")


def test_car_errors_name_the_file(car_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="car_imagenet"):
        cars.PascalCarsDataset(tmp_path, "train")
    root = tmp_path / "bad"
    (root / "Annotations" / "car_pascal").mkdir(parents=True)
    name = names_in("train", "n0", 1)[0]
    mat = write_record(root / "Annotations" / "car_imagenet" / f"{name}.mat", f"{name}.JPEG", "car_imagenet",
                       [car_object(90, "left", FACING_RIGHT)])
    with pytest.raises(FileNotFoundError, match=f"Images/car_imagenet/{name}.JPEG"):
        cars.PascalCarsDataset(root, "train")
    broken = car_object(90, "left", FACING_RIGHT)
    broken["anchors"]["left_back_wheel"]["location"] = np.array([1.0, 2.0, 3.0])
    write_record(mat, f"{name}.JPEG", "car_imagenet", [broken])
    with pytest.raises(ValueError, match=r"\.mat: record\.objects\(1\)\.anchors\.left_back_wheel\.location"):
        cars.PascalCarsDataset(root, "train")
    scipy.io.savemat(mat, {"something": np.zeros(3)})
    with pytest.raises(ValueError, match=f"{name}.mat: no variable 'record'"):
        cars.PascalCarsDataset(root, "train")


# --------------------------------------------------------------------------- UT Zappos50K shoes

SHOE_WIDTH, SHOE_HEIGHT = 136, 102


def half_black_shoe() -> np.ndarray:
    pixels = np.full((SHOE_HEIGHT, SHOE_WIDTH, 3), 255, dtype=np.uint8)
    pixels[:, : SHOE_WIDTH // 2] = 0
    return pixels


@pytest.fixture(scope="module")
def shoe_root(tmp_path_factory) -> Path:
    """12 images in the original tree under <tmp>/ut-zap50k-images."""
    root = tmp_path_factory.mktemp("zappos")
    folder = root / "ut-zap50k-images"
    for number in range(12):
        category = ("Boots", "Sandals", "Shoes")[number % 3]
        path = folder / category / "Ankle" / f"Brand {number % 2}" / f"{7000000 + number}.{number}.jpg"
        save(path, half_black_shoe())
    return root


def test_shoes_are_scaled_to_64_on_white_80_with_colours_in_range(shoe_root):
    item = shoes.ZapposShoesDataset(shoe_root, "train", test_size=3)[0]
    image = item["image"]
    assert image.shape == (3, 80, 80) and "landmarks" not in item
    assert image.min() >= 0.1 - 1e-6 and image.max() <= 0.9 + 1e-6
    # white margins of 8 pixels -> exactly 0.9
    for margin in (image[:, :8], image[:, 72:], image[:, :, :8], image[:, :, 72:]):
        torch.testing.assert_close(margin, torch.full_like(margin, 0.9))
    # the 136-wide image squeezed to 64 columns: its black left half fills columns 8..39
    content = image[:, 8:72, 8:72]
    assert content[:, :, :30].max() < 0.15 and content[:, :, :30].min() >= 0.1 - 1e-6
    assert content[:, :, 34:].min() > 0.85


def test_shoes_test_split_is_evenly_spaced_in_path_order(shoe_root):
    folder = shoe_root / "ut-zap50k-images"
    ordered = sorted(folder.rglob("*.jpg"), key=lambda path: path.relative_to(folder).as_posix())
    train = shoes.ZapposShoesDataset(shoe_root, "train", test_size=3)
    test = shoes.ZapposShoesDataset(folder, "test", test_size=3)
    assert test.paths == [str(ordered[position]) for position in (2, 6, 10)]  # (2i + 1) * 12 // 6
    assert sorted(train.paths + test.paths) == sorted(str(path) for path in ordered)
    assert not set(train.paths) & set(test.paths)


def test_shoes_registry_has_500_test_images_and_no_protocol(tmp_path):
    folder = tmp_path / "ut-zap50k-images" / "Shoes" / "Flats" / "Brand"
    for number in range(501):
        save(folder / f"{number:04d}.jpg", np.full((6, 8, 3), number % 256, dtype=np.uint8))
    test = open_dataset("shoes", tmp_path, split="test")
    train = open_dataset("shoes", tmp_path)
    assert (len(test), len(train)) == (500, 1)
    assert test[0]["image"].shape == (3, 80, 80)
    with pytest.raises(ValueError, match="no landmark annotations"):
        train.annotated_landmarks()
    with pytest.raises(ValueError, match="no annotated landmarks"):
        dataset_protocol("shoes")


def test_shoes_errors(tmp_path, shoe_root):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        shoes.ZapposShoesDataset(tmp_path / "nowhere", "train")
    with pytest.raises(ValueError, match="need more than 500"):
        shoes.ZapposShoesDataset(shoe_root, "train")


# --------------------------------------------------------------------------- Human3.6M

FRAME_SIDE = 64
HUMAN_BACKGROUND = (60, 20, 40)
LEFT_HAND, RIGHT_HAND = 19, 27


def human_pose(number: int) -> np.ndarray:
    """(32, 2) markers of frame ``number``: head top y 10, feet y 50, hips moving right 0.2 px per frame."""
    hips_x = 30 + 0.2 * (number - 1)
    pose = np.tile([hips_x, 30.0], (32, 1))
    pose[14] = [hips_x, 12]
    pose[15] = [hips_x, 10]
    for marker, offset in zip((3, 4, 5, 8, 9, 10), (-5, -6, -7, 5, 6, 7)):
        pose[marker] = [hips_x + offset, 50]
    pose[LEFT_HAND] = [hips_x - 12, 28 + 0.5 * (number - 1)]
    pose[RIGHT_HAND] = [hips_x + 14, 24]
    return pose


def human_box(number: int) -> tuple[float, float, float, float]:
    """By hand: head edge 10.5 at 15 %, feet edge 50.5 at 90 % -> side 40 / 0.75; hips edge x centred."""
    side = 40 / 0.75
    top = 50.5 - 0.9 * side
    left = 30 + 0.2 * (number - 1) + 0.5 - side / 2
    return left, top, left + side, top + side


def write_sequence(folder: Path, count: int, masks: bool = False, poses: bool = True) -> None:
    for number in range(1, count + 1):
        pose = human_pose(number)
        pixels = dotted_image(FRAME_SIDE, FRAME_SIDE, pose[[LEFT_HAND, RIGHT_HAND]], HUMAN_BACKGROUND,
                              sigma=1.5, channel=1)
        save(folder / f"{number:06d}.png", pixels)
        if masks:
            mask = np.zeros((FRAME_SIDE, FRAME_SIDE), dtype=np.uint8)
            mask[5:59, 15:51] = 255
            save(folder / "masks" / f"{number:06d}.png", mask)
    if poses:
        np.save(folder / "poses.npy", np.stack([human_pose(number) for number in range(1, count + 1)]))


def write_human_root(root: Path, subjects=("S1", "S5", "S6", "S7", "S8", "S9", "S11")) -> Path:
    for subject in subjects:
        write_sequence(root / subject / "Directions 1" / "54138969", 13, masks=subject == "S11")
    return root


@pytest.fixture(scope="module")
def human_root(tmp_path_factory) -> Path:
    """13 frames of "Directions 1" for every subject (masks for S11), plus "Walking" (11 frames) in S5.

    "Eating 1" and "WalkDog 1" have frames but no poses: reading them would fail.
    """
    root = write_human_root(tmp_path_factory.mktemp("h36m"))
    write_sequence(root / "S5" / "Walking" / "55011271", 11)
    write_sequence(root / "S1" / "Eating 1" / "54138969", 3, poses=False)
    write_sequence(root / "S5" / "WalkDog 1" / "54138969", 3, poses=False)
    return root


def test_human_splits_subjects_activities_and_pairs(human_root):
    train = human36m.Human36MDataset(human_root, "train")
    test = human36m.Human36MDataset(human_root, "test")
    # train: frames 1..3 of each 13-frame video pair with 11..13; frame 1 of the 11-frame "Walking" with 11
    assert len(train) == 6 * 3 + 1 and len(test) == 13
    subjects = [Path(path).parts[-4] for path in train.paths]
    assert sorted(set(subjects)) == ["S1", "S5", "S6", "S7", "S8", "S9"]
    assert {Path(path).parts[-4] for path in test.paths} == {"S11"}
    assert not any("Eating" in path or "WalkDog" in path for path in train.paths)
    assert [Path(path).name for path in train.paths[:3]] == ["000001.png", "000002.png", "000003.png"]
    assert "next_image" in train[0] and "next_image" not in test[0]


def test_human_landmarks_and_dots_in_the_crop(human_root):
    train = human36m.Human36MDataset(human_root, "train")
    item = train[1]  # S1, frame 2
    assert item["image"].shape == (3, 128, 128) and item["landmarks"].shape == (32, 2)
    left, top, right, bottom = human_box(2)
    expected = (human_pose(2) + 0.5 - [left, top]) / [right - left, bottom - top]
    np.testing.assert_allclose(item["landmarks"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(item["landmarks"][14:16, 1], [(10.5 + 2 - top) / 53.3333, 0.15], atol=1e-3)
    assert_dots_at(item["image"][1], 20 / 255, item["landmarks"][[LEFT_HAND, RIGHT_HAND]])
    np.testing.assert_allclose(train.annotated_landmarks()[1], expected, atol=1e-5)


def test_human_next_image_is_ten_frames_on_in_the_first_frames_box(human_root):
    item = human36m.Human36MDataset(human_root, "train")[1]  # frame 2 -> frame 12
    left, top, right, bottom = human_box(2)
    later = human_pose(12)[[LEFT_HAND, RIGHT_HAND]]
    expected = (later + 0.5 - [left, top]) / [right - left, bottom - top]
    assert_dots_at(item["next_image"][1], 20 / 255, expected)
    own_box = human_box(12)
    elsewhere = (later + 0.5 - own_box[:2]) / (own_box[2] - own_box[0])
    assert np.abs(elsewhere - expected).max() * 128 > 3  # the frame's own box would have moved the dots


def test_human_background_outside_the_mask_is_grey(human_root):
    test = human36m.Human36MDataset(human_root, "test")
    image = test[0]["image"]  # frame 1: box left 30.5 - 26.67, top 2.5, side 53.33
    scale = 128 / (40 / 0.75)
    left = 30.5 - 20 / 0.75
    column_outside = int((8.5 - left) * scale)  # original column 8: mask 0 starts at 15
    column_inside = int((35.5 - left) * scale)
    row = int((45.5 - 2.5) * scale)
    torch.testing.assert_close(image[:, :, column_outside], torch.full((3, 128), 0.5))
    torch.testing.assert_close(image[:, row, column_inside], torch.tensor(HUMAN_BACKGROUND) / 255.0)
    unmasked = human36m.Human36MDataset(human_root, "train")[0]["image"]
    torch.testing.assert_close(unmasked[:, 64, column_outside], torch.tensor(HUMAN_BACKGROUND) / 255.0)


def test_human_protocol_flip_pairs_are_the_skeletons_left_right_markers():
    protocol = dataset_protocol("human")
    assert protocol is human36m.PROTOCOL
    assert protocol.normaliser == "image" and protocol.reference_points is None
    assert (human36m.IMAGE_SIZE, human36m.PADDED_SIZE) == (128, 192) and len(protocol.point_names) == 32
    pairs = set(protocol.flip_pairs)
    # Human3.6M skeleton: hips 1/6, knees 2/7, ankles 3/8, shoulders 17/25, elbows 18/26, wrists 19/27
    for right, left in ((1, 6), (2, 7), (3, 8)):
        assert (left, right) in pairs
    for left, right in ((17, 25), (18, 26), (19, 27)):
        assert (left, right) in pairs
    assert len(pairs) == 13 and not {0, 11, 12, 13, 14, 15} & {i for pair in pairs for i in pair}


def test_human_registry(human_root):
    dataset = open_dataset("human", human_root, split="test")
    assert len(dataset) == 13 and dataset[0]["image"].shape == (3, 128, 128)


def test_human_errors_say_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="S5"):
        human36m.Human36MDataset(write_human_root(tmp_path / "partial", ("S1",)), "train")
    root = write_human_root(tmp_path / "full")
    poses_path = root / "S7" / "Directions 1" / "54138969" / "poses.npy"
    np.save(poses_path, np.zeros((13, 17, 2)))
    with pytest.raises(ValueError, match=r"S7/Directions 1/54138969/poses.npy: expected .*\(13, 32, 2\)"):
        human36m.Human36MDataset(root, "train")
    poses_path.unlink()
    with pytest.raises(FileNotFoundError, match="S7/Directions 1/54138969/poses.npy"):
        human36m.Human36MDataset(root, "train")
    mask = root / "S11" / "Directions 1" / "54138969" / "masks" / "000002.png"
    mask.unlink()
    test = human36m.Human36MDataset(root, "test")
    test[0]
    with pytest.raises(FileNotFoundError, match="masks/000002.png"):
        test[1]
    save(root / "S11" / "Directions 1" / "54138969" / "frame_a.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="frame_a.png is not named by its frame number"):
        human36m.Human36MDataset(root, "test")


# --------------------------------------------------------------------------- AwA animals

ANIMAL_DOT = (30, 20)  # box 20 10 60 40 -> square 20 5 60 45: dot at ((30.5 - 20) / 40, (20.5 - 5) / 40)
ANIMAL_DOT_NORMALISED = np.array([[10.5 / 40, 15.5 / 40]])


@pytest.fixture(scope="module")
def animal_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("Animals_with_Attributes2")
    images = root / "JPEGImages"
    for path in ("zebra/zebra_10001.jpg", "horse/horse_10002.jpg", "moose/moose_10003.jpg", "deer/deer_10004.jpg"):
        save(images / path, dotted_image(100, 60, [ANIMAL_DOT], sigma=2.5))
    edge = np.full((60, 100, 3), 50, dtype=np.uint8)
    edge[:, :5] = 200
    save(images / "antelope" / "antelope_10005.jpg", edge)
    (root / "boxes.txt").write_text(
        "zebra/zebra_10001.jpg 20 10 60 40 right\n"
        "# a comment\n"
        "horse/horse_10002.jpg 20 10 60 40 left\n"
        "moose/moose_10003.jpg 20 10 60 40 frontal\n"
        "deer/deer_10004.jpg 20 10 60 40 back\n"
        "bat/bat_10006.jpg 0 0 10 10 left\n"
        "\n"
        "antelope/antelope_10005.jpg -10 10 30 40 Left\n")
    return root


def test_animals_keep_side_views_of_the_five_classes(animal_root):
    dataset = animals.AwAAnimalsDataset(animal_root, "train")
    assert [Path(path).name for path in dataset.paths] == ["zebra_10001.jpg", "horse_10002.jpg",
                                                           "antelope_10005.jpg"]
    assert dataset.flipped.tolist() == [True, False, False]
    item = dataset[0]
    assert item["image"].shape == (3, 64, 64) and set(item) == {"image", "index"}


def test_animals_square_crop_and_flip_move_the_dot(animal_root):
    dataset = animals.AwAAnimalsDataset(animal_root, "train")
    assert_dots_at(dataset[1]["image"][0], 20 / 255, ANIMAL_DOT_NORMALISED)  # faces left: as is
    mirrored = ANIMAL_DOT_NORMALISED * [-1, 1] + [1, 0]
    assert_dots_at(dataset[0]["image"][0], 20 / 255, mirrored)  # faced right: x -> 1 - x


def test_animal_crops_repeat_edge_pixels_past_the_border(animal_root):
    image = animals.AwAAnimalsDataset(animal_root, "train")[2]["image"]  # square -10 5 30 45: 16 columns outside
    assert image[:, :, :14].min() > 0.7  # edge value 200 / 255, not black
    assert image[:, :, 30:].max() < 0.3  # 50 / 255 inside


def test_animal_registry_and_no_protocol(animal_root):
    dataset = open_dataset("animal", animal_root)
    assert len(dataset) == 3
    with pytest.raises(ValueError, match="no landmark annotations"):
        dataset.annotated_landmarks()
    with pytest.raises(ValueError, match="no annotated landmarks"):
        dataset_protocol("animal")
    with pytest.raises(ValueError, match="unknown animal split"):
        open_dataset("animal", animal_root, split="test")


@pytest.mark.parametrize("line, message", [
    ("zebra/zebra_10001.jpg 20 10 60 right", r"boxes.txt:2: expected '<class>/<name>.jpg x1 y1 x2 y2 facing'"),
    ("zebra/zebra_10001.jpg 20 10 sixty 40 left", r"boxes.txt:2: expected 4 numbers"),
    ("zebra/zebra_10001.jpg 60 10 20 40 left", r"boxes.txt:2: expected finite corners with x2 > x1"),
    ("zebra/zebra_10001.jpg 20 10 60 40 up", r"boxes.txt:2: facing must be one of"),
])
def test_animal_box_file_errors_name_the_line(animal_root, tmp_path, line, message):
    (tmp_path / "JPEGImages").symlink_to(animal_root / "JPEGImages")
    (tmp_path / "boxes.txt").write_text("horse/horse_10002.jpg 20 10 60 40 left\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        animals.AwAAnimalsDataset(tmp_path, "train")


def test_animal_missing_files(animal_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        animals.AwAAnimalsDataset(tmp_path, "train")
    (tmp_path / "JPEGImages").symlink_to(animal_root / "JPEGImages")
    with pytest.raises(FileNotFoundError, match="boxes.txt"):
        animals.AwAAnimalsDataset(tmp_path, "train")
    (tmp_path / "boxes.txt").write_text("zebra/zebra_99999.jpg 20 10 60 40 left\n")
    with pytest.raises(FileNotFoundError, match="zebra/zebra_99999.jpg"):
        animals.AwAAnimalsDataset(tmp_path, "train")
