"""Human3.6M video frames with 32 markers (Sec. 4.1, App. C, App. G.1, Table 6).

The original release (videos as .mp4, poses in CDF files, masks in MATLAB
v7.3 files) needs readers lmdis does not depend on, so lmdis reads the
frames extracted from it, one folder per video::

    <root>/S<n>/<sequence>/<camera>/<number>.jpg    every frame of the video (.jpg or .png),
                                                    named by its frame number: 000001.jpg, ...
    <root>/S<n>/<sequence>/<camera>/poses.npy       (frames, 32, 2) float: the 2-D marker
                                                    positions (x, y) in each frame's pixels,
                                                    centres at integers; row i belongs to the
                                                    i-th frame in numeric order
    <root>/S<n>/<sequence>/<camera>/masks/<number>.png   optional foreground masks, 8-bit,
                                                    0 = background, 255 = person

``<sequence>`` is the original video's action name and ``<camera>`` its
camera id, so ``Videos/Directions 1.54138969.mp4`` of subject S1 becomes
``S1/Directions 1/54138969/`` (e.g. ``ffmpeg -i "Directions 1.54138969.mp4"
"S1/Directions 1/54138969/%06d.jpg"``); ``poses.npy`` is the ``Pose``
variable of ``MyPoseFeatures/D2_Positions/Directions 1.54138969.cdf``
reshaped to (frames, 32, 2), and the masks are the frames of
``MySegmentsMat/ground_truth_bs/Directions 1.54138969.mat``.

The markers are in the order of the Human3.6M skeleton (``POINT_NAMES``:
Hips, RightUpLeg, RightLeg, RightFoot, RightToeBase, Site, LeftUpLeg, ...,
R_Wrist_End, Site), "left"/"right" being the subject's own.

Preparation (App. G.1, App. C):

- sequences: the six actions of Sec. 4.1 (``ACTIVITIES``; a sequence name
  matches when it is the action followed by an optional number, any case),
  all cameras; subjects S1, S5, S6, S7, S8, S9 for ``train`` and S11 for
  ``test`` (footnote 2 of the paper).
- crop: a square from the frame's own markers, which aligns the scale and
  the feet as the paper does with the 3-D markers: the head top
  (the higher of markers 14, 15) sits at ``HEAD_ROW`` (15 %) of the side
  from the top, the lowest foot marker at ``FOOT_ROW`` (90 %), and the hips
  (marker 0) at the horizontal centre. Edge pixels are repeated past the
  frame border. Scaled to 128x128 (the model pads to 192 with edge values).
- background: where a masks folder exists, the mask (resampled like the
  frame) blends the frame with grey 0.5: ``mask * frame + (1 - mask) * 0.5``.
- video pairs (App. C.1, 10-frame optical flow): ``train`` items also hold
  ``next_image``, the frame numbered ``FRAME_STEP`` (10) higher in the same
  video, cut with the FIRST frame's box so that the motion between the two
  is the person's; frames without such a partner are not ``train`` items.
  ``test`` holds every frame, without ``next_image``.

Evaluation (App. C.2, Table 4): the error is in % of the image side
(``normaliser="image"``) and the minimum over the annotation and its
left-right swapped copy (``PROTOCOL.flip_pairs``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lmdis.data.base import ImageDataset
from lmdis.data.images import IMAGE_EXTENSIONS, load_crop
from lmdis.data.protocol import Protocol

SPLITS = ("train", "test")
IMAGE_SIZE = 128  # Table 6
PADDED_SIZE = 192  # Table 6: the model edge-pads the images to this side
SUBJECTS = {"train": ("S1", "S5", "S6", "S7", "S8", "S9"), "test": ("S11",)}  # paper footnote 2
ACTIVITIES = ("Directions", "Discussion", "Posing", "Greeting", "Waiting", "Walking")  # Sec. 4.1
FRAME_STEP = 10  # App. C.1: optical flow over 10 frames
GREY = 0.5
POSES_FILE = "poses.npy"
MASKS_FOLDER = "masks"
POINT_NAMES = (  # the Human3.6M 32-marker skeleton; its "Site" end points are "<parent>_end" / "_site"
    "hips", "right_up_leg", "right_leg", "right_foot", "right_toe_base", "right_toe_end",
    "left_up_leg", "left_leg", "left_foot", "left_toe_base", "left_toe_end",
    "spine", "spine1", "neck", "head", "head_end",
    "left_shoulder", "left_arm", "left_fore_arm", "left_hand", "left_hand_thumb", "left_thumb_end",
    "left_wrist_end", "left_wrist_end_site",
    "right_shoulder", "right_arm", "right_fore_arm", "right_hand", "right_hand_thumb", "right_thumb_end",
    "right_wrist_end", "right_wrist_end_site",
)
FLIP_PAIRS = tuple((index, POINT_NAMES.index(name.replace("left_", "right_")))
                   for index, name in enumerate(POINT_NAMES) if name.startswith("left_"))
HIPS = 0
HEAD_MARKERS = (14, 15)
FOOT_MARKERS = (3, 4, 5, 8, 9, 10)
HEAD_ROW, FOOT_ROW = 0.15, 0.9  # fractions of the crop side, from its top
LAYOUT = "<root>/S<n>/<sequence>/<camera>/{<number>.jpg, poses.npy, masks/<number>.png (optional)}"

PROTOCOL = Protocol(dataset="human", point_names=POINT_NAMES, fit_split="train", test_split="test",
                    normaliser="image", reference_points=None, flip_pairs=FLIP_PAIRS)


def is_activity(sequence: str, activities=ACTIVITIES) -> bool:
    """True when a sequence name is one of ``activities``, optionally numbered ("Directions 1")."""
    base = re.sub(r"[\s_]*\d+$", "", sequence).strip().lower()
    return base in {activity.lower() for activity in activities}


def body_crop_boxes(poses: np.ndarray) -> np.ndarray:
    """The square crop of each frame from its markers (module docstring).

    Args:
        poses: (F, 32, 2) pixel (x, y), centres at integers.
    Returns:
        (F, 4) (left, top, right, bottom) in the pixel-edge frame. Frames
        whose head is not above their feet get a non-positive side.
    """
    head_y = poses[:, HEAD_MARKERS, 1].min(axis=1) + 0.5  # centre -> edge frame
    feet_y = poses[:, FOOT_MARKERS, 1].max(axis=1) + 0.5
    side = (feet_y - head_y) / (FOOT_ROW - HEAD_ROW)
    top = feet_y - FOOT_ROW * side
    left = poses[:, HIPS, 0] + 0.5 - side / 2
    return np.stack([left, top, left + side, top + side], axis=1)


@dataclass(frozen=True)
class _Sequence:
    folder: Path
    frames: tuple[str, ...]  # file names in frame-number order
    numbers: np.ndarray  # (F,) frame numbers
    boxes: np.ndarray  # (F, 4)
    landmarks: np.ndarray  # (F, 32, 2) normalised in each frame's own crop
    masked: bool


def _read_sequence(folder: Path) -> _Sequence:
    """One camera folder: its frames, poses, crop boxes and landmarks."""
    frames = []
    for entry in folder.iterdir():
        if entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS and not entry.name.startswith("."):
            if not entry.stem.isdigit():
                raise ValueError(f"frame {entry} is not named by its frame number; expected {LAYOUT}")
            frames.append(entry.name)
    if not frames:
        raise FileNotFoundError(f"no frames (<number>.jpg or .png) in {folder}; expected {LAYOUT}")
    frames.sort(key=lambda name: int(Path(name).stem))
    numbers = np.array([int(Path(name).stem) for name in frames])
    if np.any(np.diff(numbers) == 0):
        raise ValueError(f"{folder} has two frames with the same number; expected one file per frame")
    poses_path = folder / POSES_FILE
    if not poses_path.is_file():
        raise FileNotFoundError(f"marker file not found: {poses_path}; expected a (frames, 32, 2) array of "
                                f"pixel (x, y) per frame, {LAYOUT}")
    try:
        poses = np.load(poses_path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {poses_path} as a .npy array: {error}") from error
    expected = (len(frames), len(POINT_NAMES), 2)
    if poses.shape != expected or not np.issubdtype(poses.dtype, np.number):
        raise ValueError(f"{poses_path}: expected a numeric array of shape {expected} (one row per frame image "
                         f"in {folder}, 32 markers, x and y), got {poses.dtype} {poses.shape}")
    poses = poses.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(poses).all(axis=(1, 2)))
    if bad.size:
        raise ValueError(f"{poses_path}: row {bad[0]} (frame {frames[bad[0]]}) has non-finite coordinates")
    boxes = body_crop_boxes(poses)
    bad = np.flatnonzero(boxes[:, 2] <= boxes[:, 0])
    if bad.size:
        raise ValueError(f"{poses_path}: row {bad[0]} (frame {frames[bad[0]]}): the head markers {HEAD_MARKERS} "
                         f"are not above the foot markers {FOOT_MARKERS}; expected an upright person")
    corner, extent = boxes[:, None, :2], boxes[:, None, 2:] - boxes[:, None, :2]  # (F, 1, 2) each
    landmarks = ((poses + 0.5 - corner) / extent).astype(np.float32)  # box_to_normalised, all frames at once
    return _Sequence(folder, tuple(frames), numbers, boxes, landmarks, (folder / MASKS_FOLDER).is_dir())


class Human36MDataset(ImageDataset):
    """Human3.6M frames, cropped, masked grey, with 32 markers (see the module docstring).

    Args:
        root: the folder holding ``S1/``, ``S5/``, ... in the layout above.
        split: ``"train"`` (with ``next_image``) or ``"test"``.
        image_size: side of the square crops (Table 6: 128).
        channels: 3 or 1.
        activities: the actions to read (Table 4 also trains on each alone).
        frame_step: how many frame numbers on ``next_image`` is.
    Items: ``image`` (C, S, S), ``index``, ``landmarks`` (32, 2) normalised in
    the crop, and for ``train`` ``next_image`` (C, S, S).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", image_size: int = IMAGE_SIZE,
                 channels: int = 3, activities: tuple[str, ...] = ACTIVITIES, frame_step: int = FRAME_STEP):
        super().__init__(image_size, channels, split, SPLITS, "human")
        if frame_step < 1:
            raise ValueError(f"frame_step must be a positive number of frames, got {frame_step}")
        self.root = Path(root)
        self.sequences: list[_Sequence] = []
        items = []  # (sequence, position, next position or -1)
        for subject in SUBJECTS[split]:
            subject_folder = self.root / subject
            if not subject_folder.is_dir():
                raise FileNotFoundError(f"Human3.6M subject folder not found: {subject_folder}; the {split!r} split "
                                        f"reads {', '.join(SUBJECTS[split])}, expected {LAYOUT}")
            names = sorted(entry.name for entry in subject_folder.iterdir() if entry.is_dir())
            chosen = [name for name in names if is_activity(name, activities)]
            if not chosen:
                raise FileNotFoundError(f"no sequence of {activities} in {subject_folder} (found {names}); "
                                        f"expected {LAYOUT}")
            for name in chosen:
                cameras = sorted(entry for entry in (subject_folder / name).iterdir() if entry.is_dir())
                if not cameras:
                    raise FileNotFoundError(f"no camera folder in {subject_folder / name}; expected {LAYOUT}")
                for camera in cameras:
                    sequence = _read_sequence(camera)
                    positions = np.arange(len(sequence.frames))
                    if split == "train":
                        later = np.searchsorted(sequence.numbers, sequence.numbers + frame_step)
                        later = np.minimum(later, len(positions) - 1)
                        paired = sequence.numbers[later] == sequence.numbers + frame_step
                        positions, partners = positions[paired], later[paired]
                    else:
                        partners = np.full(len(positions), -1)
                    sequence_index = np.full(len(positions), len(self.sequences))
                    items.append(np.stack([sequence_index, positions, partners], axis=1))
                    self.sequences.append(sequence)
        self._items = np.concatenate(items)  # (n, 3)
        if not len(self._items):
            raise ValueError(f"no frame of {self.root} has a frame numbered {frame_step} higher in its video; "
                             "extract every frame of each video")
        self.paths = [str(self.sequences[s].folder / self.sequences[s].frames[p]) for s, p, _ in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def _frame(self, sequence: _Sequence, position: int, box: np.ndarray) -> torch.Tensor:
        """One frame cut by ``box``, its background grey where the sequence has masks."""
        frame = sequence.frames[position]
        image, _ = load_crop(sequence.folder / frame, box, self.channels, self.image_size)
        if sequence.masked:
            mask_path = sequence.folder / MASKS_FOLDER / (Path(frame).stem + ".png")
            if not mask_path.is_file():
                raise FileNotFoundError(f"mask {mask_path} not found: {sequence.folder / MASKS_FOLDER} exists, so "
                                        f"every frame needs {MASKS_FOLDER}/<number>.png")
            mask, _ = load_crop(mask_path, box, 1, self.image_size)
            image = mask * image + (1.0 - mask) * GREY
        return image

    def __getitem__(self, index: int) -> dict:
        sequence_index, position, partner = (int(value) for value in self._items[index])
        sequence = self.sequences[sequence_index]
        box = sequence.boxes[position]
        item = {"image": self._frame(sequence, position, box), "index": index,
                "landmarks": torch.from_numpy(sequence.landmarks[position].copy())}
        if partner >= 0:
            item["next_image"] = self._frame(sequence, partner, box)
        return item

    def annotated_landmarks(self) -> np.ndarray:
        """(n, 32, 2) float32 normalised markers of every item, in item order."""
        starts = np.cumsum([0] + [len(sequence.frames) for sequence in self.sequences])
        every_frame = np.concatenate([sequence.landmarks for sequence in self.sequences])
        return every_frame[starts[self._items[:, 0]] + self._items[:, 1]]


def open_split(root: str | os.PathLike, split: str, image_size: int = IMAGE_SIZE, channels: int = 3) -> Dataset:
    """The registry's entry point: :class:`Human36MDataset` with the six actions of Sec. 4.1."""
    return Human36MDataset(root, split, image_size=image_size, channels=channels)
