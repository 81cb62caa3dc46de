"""Settings are checked against their dataclass field's type and range, with messages naming them."""
from __future__ import annotations

import pytest

from lmdis.config import Config, build_config, coerce_setting, parse_setting, preset, preset_names, setting_names


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_valid(name):
    assert preset(name).validate().name == name


def test_setting_names_reach_the_sub_settings():
    names = setting_names()
    assert {"train.batch_size", "model.detector.widths", "model.decoder.padding_mode", "transform.grid_size",
            "loss.lambda_recon"} <= set(names)
    assert "model.detector" not in names


@pytest.mark.parametrize("name, text, expected", [
    ("train.batch_size", "8", 8),
    ("train.steps", "1e5", 100_000),                        # an integral number is an integer
    ("train.learning_rate", "2", 2.0),
    ("train.amp", "true", True),
    ("train.amp", "False", False),
    ("train.split", "training_clean", "training_clean"),
    ("train.split", "123", "123"),                          # strings are taken as written
    ("train.split", '"a b"', "a b"),
    ("train.lr_decay_steps", "[]", ()),
    ("train.lr_decay_steps", "[100, 200.0]", (100, 200)),
    ("train.zoom_range", "[1, 1.5]", (1.0, 1.5)),
    ("model.sigma_dec", "[0.1]", (0.1,)),
    ("model.detector.widths", "[8, 16]", [8, 16]),
    ("model.detector", '{"widths": [8, 16]}', {"widths": [8, 16]}),
])
def test_good_values_are_parsed_to_the_fields_type(name, text, expected):
    value = parse_setting(name, text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("name, value, message", [
    ("train.batch_size", True, "train.batch_size=True: expected an integer"),
    ("train.batch_size", -3, "train.batch_size=-3: expected a positive integer"),
    ("train.learning_rate", 0, "train.learning_rate=0.0: expected a positive number"),
    ("train.learning_rate", float("inf"), "train.learning_rate=inf: expected a finite number"),
    ("train.warp_context", 1.5, "train.warp_context=1.5: expected a number in [0, 1]"),
    ("train.contrast_jitter", -0.1, "train.contrast_jitter=-0.1: expected a number in [0, 1]"),
    ("train.lr_decay_steps", "1,2", "train.lr_decay_steps='1,2': expected a list of integers"),
    ("train.lr_decay_steps", [-1], "train.lr_decay_steps[0]=-1: expected a non-negative integer"),
    ("train.zoom_range", [1.0], "train.zoom_range=[1.0]: expected two numbers [low, high]"),
    ("model.channels", 2, "model.channels=2: expected one of (1, 3)"),
    ("model.detector.widths", [], "model.detector.widths=[]: expected a list of integers"),
    ("model.decoder.padding_mode", "wrap", "model.decoder.padding_mode='wrap': expected one of"),
    ("loss.reconstruction_form", "l1", "loss.reconstruction_form='l1': expected one of ('paper', 'released')"),
    ("transform.grid_size", 1, "transform.grid_size=1: expected an integer >= 2"),
    ("train.dataset", 3, "train.dataset=3: expected a string"),
    ("train.sizes", 3, "unknown setting 'train.sizes'"),
    ("model.detector.widths.x", 3, "model.detector.widths has no sub-settings"),
    ("optimiser.lr", 3, "unknown setting 'optimiser.lr'"),
])
def test_bad_values_name_the_setting_the_value_and_what_was_expected(name, value, message):
    with pytest.raises(ValueError) as error:
        coerce_setting(name, value)
    assert message in str(error.value)


@pytest.mark.parametrize("overrides, message", [
    ([("model", "padded_size", 57)], "model.padded_size=57 must be at least model.image_size=28 with an even"),
    ([("model", "padded_size", 20)], "model.padded_size=20 must be at least"),
    ([("model", "decoder.widths", [8, 8, 8, 8])], "model.decoder.widths has 4 levels (3 poolings), which needs "
                                                  "model.image_size divisible by 8; got 28"),
    ([("model", "sigma_dec", [])], "model.sigma_dec=[]: expected at least one"),
    ([("train", "zoom_range", [1.5, 1.2])], "train.zoom_range=[1.5, 1.2]: expected [low, high] with 1 <= low"),
])
def test_settings_that_must_agree_are_checked_together(overrides, message):
    with pytest.raises(ValueError) as error:
        build_config("mnist-cpu", overrides)
    assert message in str(error.value)


def test_a_group_of_sub_settings_changes_only_what_it_names():
    base = preset("mnist-cpu").model.detector
    config = build_config("mnist-cpu", [("model", "detector", {"widths": [8, 16, 16]})])
    assert config.model.detector.widths == [8, 16, 16]
    assert config.model.detector.skip_depth == base.skip_depth
    assert build_config("mnist-cpu", [("model", "detector.skip_depth", 1)]).model.detector.widths == base.widths


def test_from_dict_checks_ranges():
    values = preset("mnist-cpu").to_dict()
    values["train"]["log_every"] = 0
    with pytest.raises(ValueError, match=r"train\.log_every=0: expected a positive integer"):
        Config.from_dict(values)
