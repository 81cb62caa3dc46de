"""The throughput benchmark's operator shares add up and find the convolutions."""
import runpy
from pathlib import Path

import torch
import torch.nn.functional as F

THROUGHPUT = runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "throughput.py"))


def test_operator_shares_attribute_a_convolution_step_to_convolutions():
    inputs = torch.randn(8, 64, 32, 32)
    weight = torch.randn(64, 64, 3, 3, requires_grad=True)

    def step():
        F.conv2d(inputs, weight, padding=1).sum().backward()

    step()  # the first call builds the convolution's primitives; measure() also profiles warmed steps
    shares = THROUGHPUT["operator_shares"](step, 3, top=3)
    assert 0.5 < shares["convolution_share"] <= 1.0
    assert len(shares["top_operators"]) == 3
    assert 0.0 < sum(shares["top_operators"].values()) <= 1.0 + 1e-9
    assert max(shares["top_operators"], key=shares["top_operators"].get) in THROUGHPUT["CONVOLUTION_OPERATORS"]


def test_operator_shares_of_a_step_without_convolutions_is_zero():
    values = torch.randn(256, 256, requires_grad=True)

    def step():
        (values @ values).sum().backward()

    assert THROUGHPUT["operator_shares"](step, 2)["convolution_share"] == 0.0


def test_set_times_a_preset_with_a_changed_setting():
    """--set reaches the measured objective: Eq. (17) on all 8 originals costs
    more FLOPs per image than on the preset's 2, and both more than the
    detector alone."""
    cpu = torch.device("cpu")
    flops = {}
    for label, overrides in (("two", []), ("all", [("train", "recon_batch_size", 0)]),
                             ("none", [("loss", "lambda_recon", 0.0)])):
        result = THROUGHPUT["measure"]("mtfl-cpu", 1, cpu, overrides=overrides)
        flops[label] = result["train_GFLOP_per_image"]
        assert result["overrides"] == [f"{s}.{k}={v}" for s, k, v in overrides]
    assert flops["all"] > 1.3 * flops["two"] and flops["two"] > 1.1 * flops["none"]
