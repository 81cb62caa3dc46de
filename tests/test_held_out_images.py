"""DataSplit.held_out_images: a balanced choice of held-out digits, checked against the held-out items read one by one.

The embedded MNIST is sorted by digit, so the first 250 held-out images are
digits 0-4 only; the selection must give every digit its share.
"""
from __future__ import annotations

import pytest
import torch

from lmdis.config import build_config
from lmdis.data import split_data
from lmdis.data.splits import DataSplit


@pytest.fixture(scope="module")
def split():
    return split_data(build_config("mnist-cpu"))


def first_of_each_label(split, shares: dict[int, int]) -> torch.Tensor:
    """The first ``shares[d]`` held-out images of each digit d, in held-out order, read item by item."""
    taken = {digit: 0 for digit in shares}
    images = []
    for index in range(len(split.held_out)):
        item = split.held_out[index]
        digit = int(item["label"])
        if digit in shares and taken[digit] < shares[digit]:
            taken[digit] += 1
            images.append(item["image"])
    return torch.stack(images)


def test_the_first_held_out_images_are_not_every_digit(split):
    """Why the selection is balanced: in held-out order, 250 images end before digit 5."""
    labels = {int(split.held_out[index]["label"]) for index in range(250)}
    assert labels == {0, 1, 2, 3, 4}


def test_250_held_out_images_are_25_of_each_digit(split):
    images = split.held_out_images(250)
    assert images.shape == (250, 1, 28, 28)
    assert torch.equal(images, first_of_each_label(split, {digit: 25 for digit in range(10)}))


def test_a_count_that_does_not_divide_gives_the_first_digits_one_more(split):
    images = split.held_out_images(13)
    assert torch.equal(images, first_of_each_label(split, {digit: 2 if digit < 3 else 1 for digit in range(10)}))


def test_chosen_labels_and_all_images(split):
    assert torch.equal(split.held_out_images(4, labels={8}), first_of_each_label(split, {8: 4}))
    assert torch.equal(split.held_out_images(6, labels={3, 8}), first_of_each_label(split, {3: 3, 8: 3}))
    assert split.held_out_images().shape[0] == len(split.held_out) == 500
    # 50 held-out images per digit: a larger share gives all of them
    assert split.held_out_images(200, labels={3, 8}).shape[0] == 100


def test_unlabelled_items_give_the_first_count():
    items = [{"image": torch.full((1, 2, 2), float(index))} for index in range(7)]
    split = DataSplit(training=items, held_out=items, tag="faces")
    torch.testing.assert_close(split.held_out_images(3)[:, 0, 0, 0], torch.tensor([0.0, 1.0, 2.0]))
    assert split.held_out_images().shape[0] == 7
    with pytest.raises(ValueError, match="no held-out image with a label"):
        split.held_out_images(2, labels={1})


@pytest.mark.parametrize("count", [0, -3, 2.5, True])
def test_a_count_that_is_not_a_positive_integer_is_an_error(split, count):
    with pytest.raises(ValueError, match="count must be a positive integer"):
        split.held_out_images(count)
