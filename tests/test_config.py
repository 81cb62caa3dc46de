"""Config transforms (lmdis.config): shortened schedules, the paper's ablations, overrides."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from lmdis.config import ablation, ablation_configs, add_override_option, build_config, preset, shortened


def test_ablation_zeroes_one_term_and_sets_the_tps_ratio():
    base = preset("mnist-cpu")
    no_sep = ablation(base, without="sep")
    assert no_sep.loss.lambda_sep == 0 and no_sep.loss.lambda_conc == base.loss.lambda_conc
    assert no_sep.name == "mnist-cpu-no-sep" and base.loss.lambda_sep == 1.0
    grid_only = ablation(base, tps_ratio=(1, 0))
    assert grid_only.train.landmark_tps_ratio == 0.0 and grid_only.name == "mnist-cpu-tps-1-0"
    assert ablation(base, tps_ratio=(7, 3)).train.landmark_tps_ratio == pytest.approx(0.3)
    with pytest.raises(ValueError, match="without must be one of"):
        ablation(base, without="colour")
    with pytest.raises(ValueError, match="tps_ratio"):
        ablation(base, tps_ratio=(0, 0))


def test_shortened_scales_the_schedule():
    short = shortened(preset("mnist-cpu"), 150)  # the preset: 600 steps, decay 450, raise 200, warm-up 200
    assert short.train.steps == 150
    assert short.train.lr_decay_steps == (112,)
    assert short.loss.recon_increase_steps == (50,)
    assert short.train.landmark_tps_warmup == 50
    assert short.train.checkpoint_every == 100 and preset("mnist-cpu").train.steps == 600
    with pytest.raises(ValueError, match="positive"):
        shortened(preset("mnist-cpu"), 0)


def test_ablation_configs_list_each_run_once():
    runs = ablation_configs(preset("mnist-cpu"))
    assert list(runs) == ["full (7:3)", "w/o conc", "w/o sep", "w/o eqv", "TPS 1:0", "TPS 1:1"]
    assert runs["w/o eqv"].loss.lambda_eqv == 0 and runs["TPS 1:1"].train.landmark_tps_ratio == 0.5
    assert runs["full (7:3)"].to_dict() == preset("mnist-cpu").to_dict()


def test_with_overrides_changes_only_the_named_settings_and_validates():
    base = preset("mnist-cpu")
    changed = base.with_overrides([("train", "batch_size", 8), ("model", "detector", {"widths": [8, 16, 16]})])
    assert changed.train.batch_size == 8 and changed.model.detector.widths == [8, 16, 16]
    assert changed.model.detector.skip_depth == base.model.detector.skip_depth   # the group keeps the rest
    assert base.train.batch_size == 16                                           # a copy
    built = build_config("mnist-cpu", [("train", "batch_size", 8)], steps=20)
    assert built.train.batch_size == 8 and built.train.steps == 20
    with pytest.raises(ValueError, match="train.batch_size=0"):
        base.with_overrides([("train", "batch_size", 0)])


def test_add_override_option_parses_values_and_reports_bad_ones_with_their_detail(capsys):
    parser = argparse.ArgumentParser(prog="tool")
    add_override_option(parser)
    assert parser.parse_args([]).set == []
    args = parser.parse_args(["--set", "train.batch_size=4", "--set", "model.detector.widths=[8, 16, 16]"])
    assert args.set == [("train", "batch_size", 4), ("model", "detector.widths", [8, 16, 16])]
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--set", "train.batch_size=abc"])
    assert stop.value.code == 2
    message = capsys.readouterr().err
    # the parse_override message, not argparse's generic "invalid ... value"
    assert "argument --set: train.batch_size" in message and "'abc'" in message and "integer" in message


BENCHMARKS_WITH_SET = ["benchmarks/mtfl_time_budget.py", "benchmarks/landmark_gradients.py", "benchmarks/throughput.py"]


@pytest.mark.parametrize("script", BENCHMARKS_WITH_SET)
def test_each_benchmark_reports_a_bad_set_value_with_its_detail(script, tmp_path):
    root = Path(__file__).resolve().parents[1]
    arguments = ["--out", str(tmp_path / "run")] if "throughput" not in script else []
    done = subprocess.run([sys.executable, str(root / script), *arguments, "--set", "train.learning_rate=fast"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "train.learning_rate" in done.stderr and "'fast'" in done.stderr and "number" in done.stderr
