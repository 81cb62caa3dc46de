"""Time-to-quality curves of training runs: test NME against minutes and against images seen.

    python benchmarks/plot_time_budget.py runs/hour-full-s0.log runs/hour-no-recon-s0.log \
        --labels "mtfl-cpu" "mtfl-cpu-no-recon" --out runs/time-to-quality.png

Reads the logs that ``benchmarks/mtfl_time_budget.py`` writes
(:func:`lmdis.evaluate.read_progress`), prints one JSON line per run (its
last and best evaluation, its range of seconds per step) and draws
:func:`lmdis.plotting.time_to_quality_figure`. Minutes compare runs only
on the same machine at the same load; images seen compare them anywhere.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lmdis.evaluate import progress_summary, read_progress
from lmdis.plotting import time_to_quality_figure


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logs", nargs="+", help="logs of benchmarks/mtfl_time_budget.py")
    parser.add_argument("--labels", nargs="+", help="one per log (default: the log's file name)")
    parser.add_argument("--out", required=True, help="the figure (.png)")
    args = parser.parse_args()
    labels = args.labels or [Path(log).stem for log in args.logs]
    if len(labels) != len(args.logs):
        parser.error(f"{len(labels)} labels for {len(args.logs)} logs")

    runs, floors = {}, set()
    for label, log in zip(labels, args.logs):
        progress = read_progress(log)
        runs[label] = progress.points
        if progress.floor is not None:
            floors.add(progress.floor)
        print(json.dumps({"run": label, "log": log, **progress_summary(progress)}), flush=True)
    if len(floors) > 1:
        parser.error(f"the logs print different mean-shape floors {sorted(floors)}: not one protocol")
    figure = time_to_quality_figure(runs, floor=floors.pop() if floors else None)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print(json.dumps({"figure": args.out}))


if __name__ == "__main__":
    main()
