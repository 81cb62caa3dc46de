"""Quality against training time: the evaluation records a training run prints, read back.

``benchmarks/mtfl_time_budget.py`` prints one JSON line per evaluation
(``step``, ``images_seen``, ``train_minutes``, ``seconds_per_step``,
``nme_percent``) between the trainer's plain log lines, and first the
mean-shape floor (``mean_shape_nme_percent``). :func:`read_progress` turns
such a log into a :class:`Progress`, the input of
:func:`lmdis.plotting.time_to_quality_figure` (NME against minutes and
against images seen) and of :func:`progress_summary`.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple

__all__ = ["PROGRESS_KEYS", "Progress", "read_progress", "progress_summary"]

# What every evaluation record carries; training minutes exclude evaluation time.
PROGRESS_KEYS = ("step", "images_seen", "train_minutes", "seconds_per_step", "nme_percent")


class Progress(NamedTuple):
    """One run's evaluations in the order they were printed."""

    points: list[dict]  # one dict per evaluation, with at least PROGRESS_KEYS
    floor: float | None  # the mean-shape NME (%) printed first, None if absent


def read_progress(path: str | os.PathLike) -> Progress:
    """The evaluation records of a training log (lines that are not JSON are skipped).

    Raises:
        ValueError: no evaluation record, a record that lacks one of
            :data:`PROGRESS_KEYS`, or steps that do not increase (two runs
            written into one log); the message names the file and line.
    """
    points, floor = [], None
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: a line that starts with '{{' is not JSON ({error})") from None
            if "mean_shape_nme_percent" in record:
                floor = float(record["mean_shape_nme_percent"])
                continue
            if "nme_percent" not in record:
                continue
            missing = [key for key in PROGRESS_KEYS if key not in record]
            if missing:
                raise ValueError(f"{path}:{number}: evaluation record without {', '.join(missing)}; expected the "
                                 f"keys {', '.join(PROGRESS_KEYS)}")
            if points and record["step"] <= points[-1]["step"]:
                raise ValueError(f"{path}:{number}: step {record['step']} after step {points[-1]['step']}: "
                                 f"one log per run is expected")
            points.append(record)
    if not points:
        raise ValueError(f"{path}: no evaluation record (a JSON line with {', '.join(PROGRESS_KEYS)})")
    return Progress(points, floor)


def progress_summary(progress: Progress) -> dict:
    """JSON-ready: the last evaluation, the best one, and the range of seconds per step.

    >>> run = Progress([{"step": 10, "images_seen": 80, "train_minutes": 1.0, "seconds_per_step": 0.4,
    ...                  "nme_percent": 25.0},
    ...                 {"step": 20, "images_seen": 160, "train_minutes": 2.5, "seconds_per_step": 0.6,
    ...                  "nme_percent": 24.0}], floor=31.7)
    >>> progress_summary(run)["seconds_per_step"]
    [0.4, 0.6]
    """
    last = progress.points[-1]
    best = min(progress.points, key=lambda point: point["nme_percent"])
    rates = [point["seconds_per_step"] for point in progress.points]
    return {"final": {key: last[key] for key in PROGRESS_KEYS}, "best": {key: best[key] for key in PROGRESS_KEYS},
            "seconds_per_step": [min(rates), max(rates)], "mean_shape_nme_percent": progress.floor}
