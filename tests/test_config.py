"""Config files and command-line overrides."""

import pytest

from gen.config import get_config, parse_overrides
from gen.errors import ConfigError

QUICKSTART = "experiments/configs/quickstart.py"


def test_overrides_take_the_type_of_the_field():
    overrides, rest = parse_overrides([
        "--config.num_steps=7", "--workdir", "w", "--config.model.hidden", "(4, 5)",
        "--config.optim.learning_rate=1", "--config.data.name=8gaussians",
    ])
    assert rest == ["--workdir", "w"]
    config = get_config(QUICKSTART, overrides)
    assert config.num_steps == 7
    assert config.model.hidden == (4, 5)
    assert config.optim.learning_rate == 1.0 and isinstance(config.optim.learning_rate, float)
    assert config.data.name == "8gaussians"


@pytest.mark.parametrize("arg,match", [
    ("--config.num_stepz=3", "unknown config key 'num_stepz'. Did you mean num_steps"),
    ("--config.model.hiden=(1,)", "Did you mean model.hidden"),
    ("--config.num_steps=abc", "expected a int"),
    ("--config.num_steps=1.5", "expected a int"),
])
def test_bad_overrides_are_one_line_errors(arg, match):
    with pytest.raises(ConfigError, match=match) as e:
        get_config(QUICKSTART, parse_overrides([arg])[0])
    assert "\n" not in str(e.value)


def test_missing_config_file_lists_known_configs(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist.*quickstart"):
        get_config(tmp_path / "nope.py")


def test_config_file_without_get_config(tmp_path):
    path = tmp_path / "c.py"
    path.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="no get_config"):
        get_config(path)
