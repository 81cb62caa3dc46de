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
