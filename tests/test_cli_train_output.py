"""`lmdis train` output: plain log lines off a terminal, a tqdm bar on one; --overwrite replaces a run."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from lmdis.checkpoint import load_checkpoint

from test_train import REPO, run_cli

SHORT_RUN = ["train", "--preset", "mnist-cpu", "--steps", "2", "--device", "cpu", "--set", "train.log_every=1",
             "--set", "train.bn_recompute_images=32"]


def run_on_terminal(*args) -> tuple[int, str]:
    """Run ``python -m lmdis ARGS`` with stdout and stderr on a pseudo-terminal; (exit status, what it showed)."""
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, on which tqdm draws nothing.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "lmdis", *args], stdout=follower, stderr=follower, cwd=REPO,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return process.wait(timeout=300), shown.decode(errors="replace")


def test_log_lines_off_a_terminal_and_a_bar_on_one(tmp_path):
    out = tmp_path / "run"
    result = run_cli(*SHORT_RUN, "--out", str(out), env={"OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "step 1/2 total=" in result.stdout and "step 2/2 total=" in result.stdout
    assert "\r" not in result.stdout + result.stderr
    first = load_checkpoint(out / "checkpoint.pt")

    status, shown = run_on_terminal(*SHORT_RUN, "--out", str(out), "--overwrite")
    assert status == 0, shown
    assert "train:" in shown and "2/2" in shown and "\r" in shown     # tqdm redraws its line
    assert "step 1/2 total=" not in shown
    second = load_checkpoint(out / "checkpoint.pt")
    assert second["step"] == 2 and second["train_seconds"] != first["train_seconds"]  # a new run replaced it


def test_digits_train_on_one_digit_and_hold_out_as_the_notebooks_do():
    from lmdis.cli import _training_images
    from lmdis.config import preset
    from lmdis.data import split_data

    config = preset("mnist-cpu")
    twos = _training_images(config, None, None, [2])
    labels = [twos[i]["label"] for i in range(len(twos))]
    assert len(twos) == 500 and set(labels) == {2}          # the embedded set has 500 of each digit
    kept = _training_images(config, None, 10, [2])
    expected = split_data(config, None, digits=2, held_out_every=10).training
    assert len(kept) == 450
    assert [kept[i]["index"] for i in range(len(kept))] == [expected[i]["index"] for i in range(len(expected))]
    both = _training_images(config, None, None, [3, 7])
    assert sorted({both[i]["label"] for i in range(len(both))}) == [3, 7] and len(both) == 1000


def test_hold_out_every_trains_on_the_split_that_notebooks_test_on():
    from lmdis.cli import _training_images
    from lmdis.config import preset
    from lmdis.data import split_data

    config = preset("mnist-cpu")
    everything = _training_images(config, None, None)
    kept = _training_images(config, None, 10)
    held_out = split_data(config, None, held_out_every=10).held_out
    assert len(everything) == 5000 and len(kept) == 4500 and len(held_out) == 500
    import torch
    kept_images = torch.stack([kept[i]["image"] for i in range(len(kept))]).flatten(1)
    # No held-out digit is among the training images.
    for index in range(0, len(held_out), 50):
        image = held_out[index]["image"].flatten()
        assert not (kept_images == image).all(dim=1).any()
