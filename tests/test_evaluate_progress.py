"""Time-to-quality records: reading a training log back, its summary, the curve figure and its script."""
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from lmdis.evaluate import PROGRESS_KEYS, Progress, progress_summary, read_progress
from lmdis.plotting import time_to_quality_figure

RECORDS = [
    {"step": 1000, "images_seen": 8000, "train_minutes": 6.1, "seconds_per_step": 0.37, "schedule_step": 1000,
     "nme_percent": 28.8, "n_test": 2995},
    {"step": 2000, "images_seen": 16000, "train_minutes": 12.4, "seconds_per_step": 0.38, "schedule_step": 2000,
     "nme_percent": 24.8, "n_test": 2995},
    {"step": 2500, "images_seen": 20000, "train_minutes": 15.9, "seconds_per_step": 0.42, "schedule_step": 2500,
     "nme_percent": 25.3, "n_test": 2995},
]


def write_log(path, records, floor=31.7):
    """A log as benchmarks/mtfl_time_budget.py writes it: the floor, trainer lines, one JSON line per evaluation."""
    lines = [] if floor is None else [json.dumps({"mean_shape_nme_percent": floor})]
    for record in records:
        lines.append(f"step {record['step'] - 100}/{record['step']} total=512.3 recon=229 conc=1.8 sep=3.1 "
                     f"eqv=0.07 seconds_per_step=0.31")
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_progress_keeps_the_evaluations_in_order_and_the_floor(tmp_path):
    progress = read_progress(write_log(tmp_path / "run.log", RECORDS))
    assert progress.floor == 31.7
    assert [point["step"] for point in progress.points] == [1000, 2000, 2500]
    assert progress.points[1] == RECORDS[1]
    assert read_progress(write_log(tmp_path / "no-floor.log", RECORDS, floor=None)).floor is None


@pytest.mark.parametrize("records, message", [
    ([], "no evaluation record"),
    ([{key: RECORDS[0][key] for key in PROGRESS_KEYS if key != "train_minutes"}], "without train_minutes"),
    ([RECORDS[1], RECORDS[0]], "step 1000 after step 2000"),
])
def test_read_progress_names_the_file_and_line_of_a_bad_log(tmp_path, records, message):
    path = write_log(tmp_path / "bad.log", records)
    with pytest.raises(ValueError, match=message) as raised:
        read_progress(path)
    assert str(path) in str(raised.value)


def test_read_progress_rejects_a_broken_json_line_with_its_line_number(tmp_path):
    path = tmp_path / "broken.log"
    path.write_text(json.dumps({"mean_shape_nme_percent": 31.7}) + '\n{"step": 1000, "nme_percent": \n')
    with pytest.raises(ValueError, match=r"broken.log:2: .*not JSON"):
        read_progress(path)


def test_progress_summary_gives_the_last_and_the_best_evaluation():
    summary = progress_summary(Progress(RECORDS, 31.7))
    assert summary["final"]["step"] == 2500 and summary["final"]["nme_percent"] == 25.3
    assert summary["best"]["step"] == 2000 and summary["best"]["nme_percent"] == 24.8
    assert summary["seconds_per_step"] == [0.37, 0.42]
    assert set(summary["final"]) == set(PROGRESS_KEYS)


def test_time_to_quality_figure_draws_each_run_against_minutes_and_thousands_of_images():
    other = [dict(record, nme_percent=record["nme_percent"] - 2, train_minutes=record["train_minutes"] / 2)
             for record in RECORDS]
    figure = time_to_quality_figure({"full": RECORDS, "no-recon": other}, floor=31.7)
    minutes, images = figure.axes
    full_minutes, other_minutes, floor_line = minutes.get_lines()
    np.testing.assert_allclose(full_minutes.get_xdata(), [6.1, 12.4, 15.9])
    np.testing.assert_allclose(other_minutes.get_ydata(), [26.8, 22.8, 23.3])
    np.testing.assert_allclose(images.get_lines()[1].get_xdata(), [8.0, 16.0, 20.0])
    np.testing.assert_allclose(floor_line.get_ydata(), [31.7, 31.7])
    labels = [text.get_text() for text in minutes.get_legend().get_texts()]
    assert labels[0] == "full (0.37-0.42 s/step)"
    assert full_minutes.get_color() == images.get_lines()[0].get_color()
    with pytest.raises(ValueError, match="'empty' has no evaluation"):
        time_to_quality_figure({"empty": []})


def test_plot_script_prints_a_summary_per_run_and_writes_the_figure(tmp_path, monkeypatch, capsys):
    log = write_log(tmp_path / "hour.log", RECORDS)
    out = tmp_path / "figures" / "curve.png"
    monkeypatch.setattr(sys, "argv", ["plot_time_budget.py", str(log), "--labels", "full", "--out", str(out)])
    runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "plot_time_budget.py"), run_name="__main__")
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed[0]["run"] == "full" and printed[0]["final"]["nme_percent"] == 25.3
    assert printed[0]["mean_shape_nme_percent"] == 31.7
    assert out.stat().st_size > 10_000
