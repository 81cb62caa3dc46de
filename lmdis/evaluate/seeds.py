"""Runs repeated under several seeds: the mean of each measurement, its spread, and which differences exceed it.

An ablation (Table 1c, Table 5) changes one setting and compares a number.
Trained once, the comparison cannot tell the setting's effect from the luck
of one initialisation and one order of batches; trained under n seeds
(:func:`lmdis.config.with_seed`), each measurement has a mean and a spread.
:func:`seed_summary` gives them; :func:`compare_to_reference` says, for each
run and measurement, how far its mean is from the reference run's and
whether the two sets of seeds overlap at all.

Numbers in, numbers out: the measurements come from e.g.
:func:`lmdis.evaluate.diagnostics.landmark_metrics`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["seed_summary", "compare_to_reference"]


def seed_summary(per_seed: Sequence[Mapping[str, float]]) -> dict[str, dict]:
    """Mean and spread of each measurement over the runs of one setting, one run per seed.

    Args:
        per_seed: one ``{measurement: value}`` per seed, all with the same keys.
    Returns:
        ``{measurement: {"mean", "std", "min", "max", "count", "values"}}``;
        ``std`` is the sample standard deviation (n - 1 in the denominator),
        0 for a single seed.
    Raises:
        ValueError: no runs, or runs that measured different things.
    """
    if not per_seed:
        raise ValueError("seed_summary needs at least one run")
    keys = list(per_seed[0])
    for index, run in enumerate(per_seed):
        if set(run) != set(keys):
            raise ValueError(f"run {index} measured {sorted(run)}, run 0 measured {sorted(keys)}")
    summary = {}
    for key in keys:
        values = np.array([float(run[key]) for run in per_seed])
        summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                        "min": float(values.min()), "max": float(values.max()), "count": len(values),
                        "values": values.tolist()}
    return summary


def compare_to_reference(summaries: Mapping[str, Mapping[str, dict]], reference: str) -> dict[str, dict]:
    """Each setting against ``reference``: the difference of the means and whether the seeds overlap.

    Args:
        summaries: ``{label: seed_summary(...)}``, ``reference`` among them.
    Returns:
        ``{label: {measurement: {"difference", "relative", "separated"}}}``
        for every label but the reference: ``difference`` = mean - the
        reference's mean, ``relative`` = that over the reference's mean, and
        ``separated`` = True when every seed of one lies above every seed of
        the other (the ranges [min, max] do not overlap). With three seeds
        each, two settings that do not differ are separated by chance in 1
        case of 10 (2 of the 20 equally likely orders of six values).
    """
    if reference not in summaries:
        raise ValueError(f"the reference {reference!r} is not one of {list(summaries)}")
    base = summaries[reference]
    comparison = {}
    for label, summary in summaries.items():
        if label == reference:
            continue
        comparison[label] = {}
        for key, values in summary.items():
            if key not in base:
                raise ValueError(f"{label!r} measured {key!r}, the reference {reference!r} did not")
            difference = values["mean"] - base[key]["mean"]
            separated = values["min"] > base[key]["max"] or values["max"] < base[key]["min"]
            relative = difference / base[key]["mean"] if base[key]["mean"] else float("nan")
            comparison[label][key] = {"difference": difference, "relative": relative, "separated": bool(separated)}
    return comparison
