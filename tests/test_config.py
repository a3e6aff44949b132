import pytest

from selfevolve.config import config_to_toml, load_config
from selfevolve.errors import ConfigError
from selfevolve.recipes.length_gen import Config


def test_overrides_are_typed():
    cfg = load_config(Config, None, ["seed=3", "learning_rate=1e-4", "filters=length,vote", "task=multiplication"])
    assert cfg.seed == 3 and cfg.learning_rate == 1e-4 and cfg.filters == ("length", "vote")
    assert cfg.task == "multiplication"


def test_toml_roundtrip(tmp_path):
    cfg = load_config(Config, None, ["target_digits=12"])
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(Config, path) == cfg


@pytest.mark.parametrize("override,message", [
    ("nope=1", "unknown config key 'nope'; valid keys:"),
    ("seed=abc", "seed: expected a number"),
    ("seed=1.5", "seed: expected a whole number"),
    ("labelled_max_digits=-5", "labelled_max_digits must be >= 1, got -5"),
    ("target_digits=3", "target_digits (3) must be >= labelled_max_digits (5)"),
    ("filters=length,magic", "filters: unknown filter 'magic'"),
    ("pos_encoding=alibi", "pos_encoding must be one of"),
    ("task=division", "task: unknown task 'division'"),
    ("self_data_fraction=2", "self_data_fraction must be in [0, 1]"),
    ("novalue", "--set expects key=value"),
])
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(Config, None, [override])
    assert message in str(err.value)


def test_bad_toml_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("seed = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(Config, path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Config, tmp_path / "missing.toml")
