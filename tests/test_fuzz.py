"""Property-based fuzzing: image decoding and the ``--set`` parser fail only with their own clear errors."""
from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from lmdis.config import Config, build_config, coerce_setting, parse_override, setting_names
from lmdis.data import image_size_of, load_image

FUZZ = settings(max_examples=200, deadline=None, database=None)  # bounded; leaves no example database behind
SIZE = 16


def _encoded(format_name: str) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format_name)
    return buffer.getvalue()


VALID = {name: _encoded(name) for name in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")}


@st.composite
def damaged_images(draw) -> bytes:
    """Random bytes, truncated files, files with bytes overwritten, and valid headers with random bodies."""
    kind = draw(st.sampled_from(["random", "truncated", "overwritten", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    valid = VALID[draw(st.sampled_from(sorted(VALID)))]
    if kind == "truncated":
        return valid[:draw(st.integers(0, len(valid) - 1))]
    if kind == "header":
        return valid[:draw(st.integers(1, 64))] + draw(st.binary(max_size=400))
    data = bytearray(valid)
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
                                         min_size=1, max_size=12)):
        data[position] = value
    return bytes(data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about the corrupt metadata it skips
@FUZZ
@given(data=damaged_images(), channels=st.sampled_from([1, 3]))
def test_damaged_image_files_decode_or_raise_a_value_error_naming_the_file(data, channels):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.img"
        path.write_bytes(data)
        try:
            image = load_image(path, channels, SIZE, max_pixels=2**20)
        except ValueError as error:
            assert str(path) in str(error)
        else:
            assert image.shape == (channels, SIZE, SIZE) and image.dtype == torch.float32
            assert bool(torch.isfinite(image).all()) and 0 <= float(image.min()) <= float(image.max()) <= 1
        try:
            width, height = image_size_of(path, max_pixels=2**20)
        except ValueError as error:
            assert str(path) in str(error)
        else:
            assert width * height <= 2**20


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**20) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6).map(json.dumps)
NAMES = st.sampled_from(setting_names()) | st.text(max_size=24)
TEXTS = JSON_VALUES | st.text(max_size=24) | st.sampled_from(["true", "False", "no", "1e5", "[1, 1.5]", "inf", ""])


@FUZZ
@given(name=NAMES, text=TEXTS)
def test_set_parser_returns_a_checked_value_or_a_clear_error(name, text):
    """Either an error that names the setting (the command line shows it as it is), or a value its setting
    accepts unchanged."""
    try:
        section, key, value = parse_override(f"{name}={text}")
    except ValueError as error:
        assert str(error)
        return
    if not isinstance(value, dict):                       # a group of sub-settings is merged, not coerced
        assert coerce_setting(f"{section}.{key}", value) == value
    try:
        config = build_config("mnist-cpu", [(section, key, value)])
    except ValueError as error:                           # settings that must agree with the preset's
        assert any(f"{prefix}." in str(error) for prefix in ("model", "loss", "train", "transform")), str(error)
        return
    assert isinstance(config, Config)
    assert Config.from_dict(config.to_dict()) == config


@FUZZ
@given(batch_size=st.integers(-5, 10**6) | st.floats(allow_nan=True, allow_infinity=True))
def test_integer_settings_take_exactly_the_integral_values(batch_size):
    text = json.dumps(batch_size)
    try:
        _, _, value = parse_override(f"train.batch_size={text}")
    except ValueError as error:
        assert "train.batch_size=" in str(error)
        assert not (math.isfinite(batch_size) and batch_size == int(batch_size) and batch_size >= 1)
    else:
        assert value == batch_size and type(value) is int and value >= 1
