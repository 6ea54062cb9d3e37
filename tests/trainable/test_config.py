import dataclasses

import pytest

from trainable.config import PRESETS, FieldType, TrainConfig, field_types, preset
from trainable.errors import ConfigError


@pytest.mark.parametrize("values,message", [
    ({"latent_sise": 10}, "unknown config key 'latent_sise'"),
    ({"d_dropout": 1.5}, "d_dropout: 1.5 out of range"),
    ({"d_filters": "8,16"}, "d_filters: expected three positive integers"),
    ({"d_filters": "8,x,16"}, "d_filters: expected integers"),
    ({"iterations": 0}, "iterations: 0 out of range"),
    ({"iterations": 2.5}, "iterations: expected an integer"),
    ({"batch_size": True}, "batch_size: expected an integer"),
    ({"normalization": "0..1"}, "normalization: expected one of"),
    ({"g_beta2": 1.0}, "g_beta2: 1.0 out of range"),
    ({"freeze_accuracy": 0.2}, "freeze_accuracy: 0.2 out of range"),
    ({"g_lr": "fast"}, "g_lr: cannot read 'fast'"),
    ({"precision": "fp8"}, "precision: expected one of"),
    ({"cuda_graphs": "maybe"}, "cuda_graphs: expected true or false"),
])
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        TrainConfig.from_dict(values)


def test_strings_from_the_command_line_are_typed():
    config = TrainConfig.from_dict({"d_filters": "16,32,64", "freeze_after": "off", "freeze_accuracy": "0.9",
                                    "iterations": "5e3", "g_lr": "1e-3", "normalization": "[-1,1]"})
    assert config.d_filters == (16, 32, 64)
    assert config.freeze_after is None and config.freeze_accuracy == 0.9
    assert config.iterations == 5000 and isinstance(config.iterations, int)
    assert config.g_lr == 1e-3 and config.normalization == "[-1,1]"


def test_field_types_come_from_the_annotations_not_their_text():
    kinds = field_types()
    assert kinds["d_filters"] == FieldType(tuple, False) and kinds["latent_size"] == FieldType(int, False)
    assert kinds["freeze_after"] == FieldType(int, True) and kinds["freeze_accuracy"] == FieldType(float, True)
    assert kinds["normalization"] == FieldType(str, False)
    assert set(kinds) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_cuda_graphs_is_a_run_setting_that_a_cpu_trainer_ignores(tiny_data):
    from trainable.experiment import preset_changes, trial_params
    from trainable.training import Trainer

    config = preset("V0", cuda_graphs="false")
    assert config.cuda_graphs is False
    assert preset_changes(trial_params(config), "V0") == []  # still the paper's V0
    _, dataset, _ = tiny_data
    assert Trainer(preset("V0"), dataset, device="cpu").cuda_graphs is False
    assert Trainer(preset("V0"), dataset, device="cpu", cuda_graphs=True).cuda_graphs is False


def test_round_trip_through_plain_values():
    config = preset("V2", seed=3)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_config_is_frozen():
    with pytest.raises(Exception):
        TrainConfig().latent_size = 5  # type: ignore[misc]


def test_presets_follow_the_paper():
    v0, v1, v2 = preset("V0"), preset("V1"), preset("V2")
    assert v0.latent_size == 100 and v0.d_filters == (32, 64, 128) and v0.g_filters == (256, 128, 64)
    assert (v0.g_beta1, v0.g_beta2, v0.g_lr, v0.batch_size) == (0.5, 0.999, 2e-4, 64)
    assert v0.freeze_after is None and v0.freeze_accuracy is None and v0.d_dropout == 0
    assert v1.latent_size == 80 and v1.d_dropout > 0
    assert all(a < b for a, b in zip(v1.d_filters, v0.d_filters))
    assert v1.freeze_after is None
    assert {k: v for k, v in PRESETS["V2"].items() if not k.startswith("freeze")} == PRESETS["V1"]
    assert v2.freeze_after == 50_000 and v2.freeze_accuracy is not None
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("V3")
