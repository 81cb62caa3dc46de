"""lmdis.evaluate.digits: ink sampling against numpy, the frame-fixed control, the pixel classifier."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lmdis.evaluate import PixelClassifier, frame_fixed, ink_at, on_stroke


def test_ink_at_pixel_centres_and_between_them_matches_numpy_bilinear():
    rng = np.random.default_rng(0)
    image = rng.random((6, 6))
    # Pixel centres at (i + 0.5) / 6: exactly the stored values.
    centres = torch.tensor([[[(2 + 0.5) / 6, (4 + 0.5) / 6], [(0 + 0.5) / 6, (5 + 0.5) / 6]]])
    values = ink_at(torch.from_numpy(image)[None, None], centres)[0].numpy()
    np.testing.assert_allclose(values, [image[4, 2], image[5, 0]], atol=1e-6)   # float32 coordinates
    # Halfway between four centres: their mean.
    between = torch.tensor([[[3 / 6, 2 / 6]]])
    expected = image[1:3, 2:4].mean()
    np.testing.assert_allclose(ink_at(torch.from_numpy(image)[None, None], between)[0, 0].item(), expected, atol=1e-6)   # float32 coordinates


def test_on_stroke_counts_landmarks_on_ink_and_the_control_does_not_move():
    images = torch.zeros(2, 1, 4, 4)
    images[0, 0, 1, 1] = 1.0        # ink under the first landmark of image 0 only
    landmarks = torch.tensor([[[1.5 / 4, 1.5 / 4], [3.5 / 4, 3.5 / 4]],
                              [[1.5 / 4, 1.5 / 4], [0.5 / 4, 0.5 / 4]]])
    share, per_landmark = on_stroke(images, landmarks)
    assert share == pytest.approx(0.25)
    np.testing.assert_allclose(per_landmark, [0.5, 0.0])
    fixed = frame_fixed(landmarks)
    assert torch.equal(fixed[0], fixed[1])
    torch.testing.assert_close(fixed[0], landmarks.mean(dim=0))


def test_ink_at_refuses_colour_images():
    with pytest.raises(ValueError, match=r"images \(B, 1, S, S\)"):
        ink_at(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 2))


def test_pixel_classifier_reads_two_separable_patterns():
    rng = np.random.default_rng(1)
    left = torch.zeros(40, 1, 4, 4)
    left[:, :, :, :2] = 1.0
    right = 1.0 - left
    images = torch.cat([left, right]) + 0.1 * torch.from_numpy(rng.standard_normal((80, 1, 4, 4))).float()
    labels = np.array([3] * 40 + [8] * 40)
    classifier = PixelClassifier(images, labels)
    assert classifier.accuracy(torch.cat([left, right]), labels) == 1.0
    assert list(classifier.predict(right[:2])) == [8, 8]


def test_pixel_classifier_from_dataset_fits_on_every_item_and_refuses_unlabelled_data():
    left = torch.zeros(1, 4, 4)
    left[:, :, :2] = 1.0
    labelled = [{"image": image, "label": label} for image, label in [(left, 3), (1 - left, 8)] * 10]
    classifier = PixelClassifier.from_dataset(labelled)
    assert list(classifier.predict(torch.stack([left, 1 - left]))) == [3, 8]
    with pytest.raises(ValueError, match="needs a labelled data set"):
        PixelClassifier.from_dataset([{"image": left}])
