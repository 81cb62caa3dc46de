"""Bad command lines: exit status 2, a message naming the value, no traceback, nothing written.

One table of bad inputs across ``train``, ``landmarks``, ``evaluate`` and
``prepare``, run in-process through :func:`lmdis.cli.main` (the same code
path as ``python -m lmdis``, which only adds ``sys.exit``); a few run as
subprocesses to show the exit status and the absence of a traceback end to
end. Every case snapshots the folders it could write to and checks that
nothing in them changed.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lmdis.checkpoint import atomic_save
from lmdis.cli import main
from lmdis.config import preset
from lmdis.model import LandmarkAutoencoder

from test_train import run_cli, tiny_config


def png_declaring(width: int, height: int) -> bytes:
    """A PNG header (IHDR, no pixel data) that declares ``width`` x ``height`` greyscale pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(
        b"IEND", b"")


def save_checkpoint(path: Path, config, edit=None) -> Path:
    torch.manual_seed(0)
    payload = {"model": LandmarkAutoencoder(config.model).state_dict(), "config": config.to_dict(), "step": 1}
    if edit is not None:
        edit(payload)
    atomic_save(payload, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Inputs the cases refer to by name: checkpoints good and bad, image folders, paths that are files."""
    root = tmp_path_factory.mktemp("inputs")
    config = tiny_config()
    paths = {"root": root, "missing": root / "missing.pt", "absent": root / "absent"}
    paths["ckpt"] = save_checkpoint(root / "good.pt", config)

    def more_landmarks(payload):
        payload["config"]["model"]["num_landmarks"] = 10          # the weights are for K = 3

    def poisoned(payload):
        payload["model"]["detector.network.stem.0.0.weight"][0, 0, 0, 0] = float("nan")

    paths["ckpt_k"] = save_checkpoint(root / "k_mismatch.pt", config, more_landmarks)
    paths["ckpt_nan"] = save_checkpoint(root / "nan.pt", config, poisoned)
    torch.save([1, 2, 3], root / "list.pt")
    paths["ckpt_list"] = root / "list.pt"
    (root / "corrupt.pt").write_bytes(b"not a checkpoint")
    paths["ckpt_corrupt"] = root / "corrupt.pt"
    paths["file"] = root / "notes.txt"
    paths["file"].write_text("a file, not a folder")
    rng = np.random.default_rng(0)
    for name in ("images", "bad_images"):
        (root / name).mkdir()
        for index in range(2):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / name / f"good{index}.png")
        paths[name] = root / name
    (root / "bad_images" / "broken1.png").write_bytes(b"\x89PNG not really")
    (root / "bad_images" / "broken2.jpg").write_bytes(b"")
    (root / "bad_images" / "huge3.png").write_bytes(png_declaring(15000, 15000))
    paths["bomb"] = root / "bomb.png"
    paths["bomb"].write_bytes(png_declaring(15000, 15000))
    (root / "empty").mkdir()
    paths["empty"] = root / "empty"
    mnist = preset("mnist-cpu")
    (root / "run").mkdir()
    save_checkpoint(root / "run" / "checkpoint.pt", mnist)
    paths["run"] = root / "run"
    (root / "run_nan").mkdir()
    save_checkpoint(root / "run_nan" / "checkpoint.pt", mnist,
                    lambda payload: payload["model"]["detector.network.head.1.running_var"].fill_(float("inf")))
    paths["run_nan"] = root / "run_nan"
    return paths


TRAIN = ["train", "--preset", "mnist-cpu", "--out", "{out}", "--steps", "2"]
LANDMARKS = ["landmarks", "--checkpoint", "{ckpt}", "--images", "{images}", "--out", "{out}/landmarks.csv",
             "--device", "cpu"]
EVALUATE = ["evaluate", "--checkpoint", "{ckpt}", "--dataset", "mtfl", "--data", "{root}", "--device", "cpu"]
PREPARE = ["prepare", "--dataset", "mtfl", "--data", "{root}", "--split", "testing", "--out", "{out}/prepared"]


def replace(command: list[str], option: str, value: str) -> list[str]:
    """``command`` with ``option``'s value replaced (or the option added)."""
    if option in command:
        index = command.index(option)
        return command[:index + 1] + [value] + command[index + 2:]
    return command + [option, value]


# (id, command line, strings the message must contain)
CASES = [
    # train: --set values of the wrong type or out of range
    ("set-int-word", TRAIN + ["--set", "train.batch_size=abc"], ["train.batch_size", "abc", "integer"]),
    ("set-int-fraction", TRAIN + ["--set", "train.batch_size=2.5"], ["train.batch_size=2.5", "integer"]),
    ("set-float-word", TRAIN + ["--set", "train.learning_rate=fast"], ["train.learning_rate", "fast", "number"]),
    ("set-bool-no", TRAIN + ["--set", "train.amp=no"], ["train.amp", "'no'", "true or false"]),
    ("set-checkpoint-every-0", TRAIN + ["--set", "train.checkpoint_every=0"],
     ["train.checkpoint_every=0", "positive integer"]),
    ("set-log-every-0", TRAIN + ["--set", "train.log_every=0"], ["train.log_every=0", "positive"]),
    ("set-probability", TRAIN + ["--set", "train.landmark_tps_ratio=1.5"], ["train.landmark_tps_ratio=1.5", "[0, 1]"]),
    ("set-negative-std", TRAIN + ["--set", "transform.grid_offset_std=-0.1"],
     ["transform.grid_offset_std=-0.1", "non-negative"]),
    ("set-list-as-number", TRAIN + ["--set", "train.lr_decay_steps=450"], ["train.lr_decay_steps=450", "list"]),
    ("set-zoom-below-one", TRAIN + ["--set", "train.zoom_range=[0.5, 2]"], ["train.zoom_range", "0.5"]),
    ("set-zero-landmarks", TRAIN + ["--set", "model.num_landmarks=0"], ["model.num_landmarks=0", "positive"]),
    ("set-odd-padding", TRAIN + ["--set", "model.padded_size=57"], ["model.padded_size=57", "even"]),
    ("set-undivisible-hourglass", TRAIN + ["--set", "model.detector.widths=[16, 32, 32, 32, 32]"],
     ["model.detector.widths", "divisible by 16"]),
    ("set-unknown-key", TRAIN + ["--set", "train.nonsense=1"], ["train.nonsense"]),
    ("set-no-section", TRAIN + ["--set", "batch_size=8"], ["batch_size=8", "SECTION.KEY=VALUE"]),
    ("set-choice", TRAIN + ["--set", "model.pooling=max"], ["model.pooling", "'max'", "gaussian"]),
    ("set-nan", TRAIN + ["--set", "loss.lambda_recon=NaN"], ["loss.lambda_recon=nan", "finite"]),
    ("set-seed-negative", TRAIN + ["--set", "train.seed=-1"], ["train.seed=-1"]),
    # train: other options
    ("steps-zero", replace(TRAIN, "--steps", "0"), ["--steps", "'0'", "positive integer"]),
    ("hold-out-zero", TRAIN + ["--hold-out-every", "0"], ["--hold-out-every", "'0'", "positive integer"]),
    ("digits-ten", TRAIN + ["--digits", "10"], ["--digits", "'10'", "digit from 0 to 9"]),
    ("digits-word", TRAIN + ["--digits", "two"], ["--digits", "'two'", "digit from 0 to 9"]),
    ("digits-not-mnist", TRAIN + ["--dataset", "mtfl", "--data", "{root}", "--digits", "2"],
     ["--digits 2", "'mtfl'", "mnist-embedded"]),
    ("steps-word", replace(TRAIN, "--steps", "ten"), ["--steps", "'ten'"]),
    ("minutes-negative", TRAIN + ["--minutes", "-1"], ["--minutes", "'-1'"]),
    ("minutes-nan", TRAIN + ["--minutes", "nan"], ["--minutes", "'nan'"]),
    ("workers-negative", TRAIN + ["--num-workers", "-2"], ["--num-workers", "'-2'"]),
    ("device-unknown", TRAIN + ["--device", "gpu"], ["--device", "'gpu'"]),
    ("data-ignored", TRAIN + ["--data", "/missing/folder"], ["/missing/folder", "is not used", "mnist-embedded"]),
    ("data-missing", TRAIN + ["--dataset", "mtfl", "--data", "{absent}"], ["{absent}", "does not exist"]),
    ("dataset-unknown", TRAIN + ["--dataset", "nope"], ["'nope'", "mnist-embedded"]),
    ("preset-unknown", replace(TRAIN, "--preset", "nope"), ["'nope'", "mnist-cpu"]),
    ("out-is-file", replace(TRAIN, "--out", "{file}"), ["{file}", "is a file"]),
    ("out-under-file", replace(TRAIN, "--out", "{file}/run"), ["{file}", "no folder can be made"]),
    ("out-holds-checkpoint", replace(TRAIN, "--out", "{run}"), ["{run}", "--resume", "--overwrite"]),
    ("resume-and-overwrite", replace(TRAIN, "--out", "{run}") + ["--resume", "--overwrite"], ["--overwrite"]),
    ("resume-other-model", replace(TRAIN, "--out", "{run}") + ["--resume", "--set", "model.num_landmarks=8"],
     ["{run}/checkpoint.pt", "another model config"]),
    ("resume-non-finite", replace(TRAIN, "--out", "{run_nan}") + ["--resume"],
     ["{run_nan}/checkpoint.pt", "non-finite", "head.1.running_var"]),
    ("image-limit-zero", TRAIN + ["--max-image-pixels", "0"], ["--max-image-pixels", "'0'"]),
    # landmarks
    ("landmarks-out-folder", replace(LANDMARKS, "--out", "{out}"), ["{out}", "is a folder"]),
    ("landmarks-out-under-file", replace(LANDMARKS, "--out", "{file}/x.csv"), ["{file}", "no folder can be made"]),
    ("landmarks-batch-negative", LANDMARKS + ["--batch-size", "-1"], ["--batch-size", "'-1'", "positive integer"]),
    ("landmarks-batch-zero", LANDMARKS + ["--batch-size", "0"], ["--batch-size", "'0'"]),
    ("landmarks-workers-negative", LANDMARKS + ["--num-workers", "-1"], ["--num-workers", "'-1'"]),
    ("landmarks-device", replace(LANDMARKS, "--device", "cuda:x"), ["--device", "'cuda:x'"]),
    ("landmarks-images-missing", replace(LANDMARKS, "--images", "{absent}"), ["{absent}"]),
    ("landmarks-images-empty", replace(LANDMARKS, "--images", "{empty}"), ["{empty}", "no image files"]),
    ("landmarks-checkpoint-missing", replace(LANDMARKS, "--checkpoint", "{missing}"), ["{missing}"]),
    ("landmarks-checkpoint-corrupt", replace(LANDMARKS, "--checkpoint", "{ckpt_corrupt}"), ["{ckpt_corrupt}"]),
    ("landmarks-checkpoint-list", replace(LANDMARKS, "--checkpoint", "{ckpt_list}"),
     ["{ckpt_list}", "not an lmdis checkpoint"]),
    ("landmarks-weights-mismatch", replace(LANDMARKS, "--checkpoint", "{ckpt_k}"),
     ["{ckpt_k}", "detector.network.head.0.weight", "(4, 4, 1, 1)", "(11, 4, 1, 1)"]),
    ("landmarks-weights-nan", replace(LANDMARKS, "--checkpoint", "{ckpt_nan}"),
     ["{ckpt_nan}", "non-finite", "detector.network.stem.0.0.weight"]),
    ("landmarks-bad-files", replace(LANDMARKS, "--images", "{bad_images}"),
     ["3 of 5 images", "broken1.png", "broken2.jpg", "huge3.png"]),
    ("landmarks-pixel-limit", replace(LANDMARKS, "--images", "{bomb}"), ["{bomb}", "15000x15000", "89,478,485"]),
    ("landmarks-own-pixel-limit", LANDMARKS + ["--max-image-pixels", "100"], ["good0.png", "16x16", "limit of 100"]),
    # evaluate
    ("evaluate-repeats-zero", EVALUATE + ["--few-shot-repeats", "0"], ["--few-shot-repeats", "'0'"]),
    ("evaluate-seed-negative", EVALUATE + ["--seed", "-1"], ["--seed", "'-1'"]),
    ("evaluate-dataset-unknown", replace(EVALUATE, "--dataset", "nope"), ["'nope'"]),
    ("evaluate-no-annotations", ["evaluate", "--checkpoint", "{ckpt}", "--dataset", "mnist-embedded"],
     ["'mnist-embedded'", "no annotated landmarks"]),
    ("evaluate-data-missing", replace(EVALUATE, "--data", "{absent}"), ["{absent}", "does not exist"]),
    ("evaluate-figure-folder", EVALUATE + ["--figure", "{out}"], ["--figure", "{out}", "is a folder"]),
    ("evaluate-weights-mismatch", replace(EVALUATE, "--checkpoint", "{ckpt_k}"),
     ["{ckpt_k}", "detector.network.head.0.weight"]),
    ("evaluate-weights-nan", replace(EVALUATE, "--checkpoint", "{ckpt_nan}"), ["{ckpt_nan}", "non-finite"]),
    ("evaluate-device", EVALUATE[:-2] + ["--device", "gpu"], ["--device", "'gpu'"]),
    # prepare
    ("prepare-dataset-unknown", replace(PREPARE, "--dataset", "nope"), ["'nope'"]),
    ("prepare-data-missing", replace(PREPARE, "--data", "{absent}"), ["{absent}", "does not exist"]),
    ("prepare-data-ignored", replace(PREPARE, "--dataset", "mnist-embedded")[:-4] + ["--out", "{out}/p"],
     ["{root}", "is not used"]),
    ("prepare-size-zero", PREPARE + ["--image-size", "0"], ["--image-size", "'0'"]),
    ("prepare-size-negative", PREPARE + ["--image-size", "-5"], ["--image-size", "'-5'"]),
    ("prepare-out-file", replace(PREPARE, "--out", "{file}"), ["{file}", "is a file"]),
    ("prepare-split-unknown", replace(PREPARE, "--split", "nope"), ["'nope'", "testing"]),
    ("prepare-bad-files", ["prepare", "--dataset", "folder", "--data", "{bad_images}", "--out", "{out}/prepared"],
     ["3 of 5 images", "broken1.png", "broken2.jpg", "huge3.png"]),
    ("prepare-needs-root", ["prepare", "--dataset", "celeba", "--out", "{out}/prepared"], ["'celeba'", "root"]),
]


def snapshot(*folders: Path) -> dict[str, str]:
    """Every path under ``folders``: a hash of each file's bytes, "dir" for folders."""
    return {str(path): "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in folders for path in sorted(folder.rglob("*"))}


def fill(command: list[str], values: dict[str, Path]) -> list[str]:
    return [part.format(**{name: str(path) for name, path in values.items()}) for part in command]


def test_the_table_covers_forty_cases_of_every_command():
    commands = [case[1][0] for case in CASES]
    assert len(CASES) >= 40 and set(commands) == {"train", "landmarks", "evaluate", "prepare"}
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("command, needles", [pytest.param(c, n, id=i) for i, c, n in CASES])
def test_bad_input_is_a_clear_error_and_writes_nothing(command, needles, files, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    values = {**files, "out": out}
    before = snapshot(files["root"], tmp_path)
    assert main(fill(command, values)) == 2
    error = capsys.readouterr().err
    for needle in fill(needles, values):
        assert needle in error, f"{needle!r} not in {error!r}"
    assert "Traceback" not in error
    assert snapshot(files["root"], tmp_path) == before


@pytest.mark.parametrize("command, needles", [
    pytest.param(TRAIN + ["--set", "train.batch_size=abc"], ["train.batch_size='abc'"], id="train-set"),
    pytest.param(replace(LANDMARKS, "--out", "{out}"), ["is a folder"], id="landmarks-out-folder"),
    pytest.param(replace(EVALUATE, "--checkpoint", "{ckpt_k}"), ["head.0.weight"], id="evaluate-mismatch"),
    pytest.param(PREPARE + ["--image-size", "0"], ["--image-size"], id="prepare-size"),
])
def test_bad_input_end_to_end_exits_2_without_traceback(command, needles, files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(*fill(command, {**files, "out": out}), timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert all(needle in result.stderr for needle in needles), result.stderr
    assert list(out.iterdir()) == []
