from pathlib import Path

import pytest

from textvae.config import Config, all_keys
from textvae.errors import ConfigError
from textvae.presets import demo_config

ROOT = Path(__file__).resolve().parents[1]


def test_yaml_and_json_round_trip(tmp_path):
    cfg = Config().apply_overrides(["model.latent_size=8", "train.max_batch_tokens=4000", "data.valid=null"])
    cfg.to_yaml(tmp_path / "c.yaml")
    cfg.to_json(tmp_path / "c.json")
    assert Config.from_yaml(tmp_path / "c.yaml") == cfg
    assert Config.from_json(tmp_path / "c.json") == cfg


def test_overrides_set_typed_values():
    cfg = Config().apply_overrides(
        ["train.max_steps=7", "train.lr=3e-4", "data.lowercase=true", "data.train=corpus.txt", "train.lr=1"]
    )
    assert cfg.train.max_steps == 7 and isinstance(cfg.train.lr, float) and cfg.train.lr == 1.0
    assert cfg.data.lowercase is True and cfg.data.train == "corpus.txt"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_step=5", "did you mean 'train.max_steps'"),
        ("model.latnt_size=5", "did you mean 'model.latent_size'"),
        ("trian.max_steps=5", "did you mean 'train.max_steps'"),
        ("train.max_steps=abc", "expects an integer"),
        ("train.max_steps=1.5", "expects an integer"),
        ("data.lowercase=maybe", "expects true or false"),
        ("train.lr=fast", "expects a number"),
        ("model.encoder=cnn", "must be one of"),
        ("model.word_dropout=1.5", "between 0.0 and 1.0"),
        ("model.mmd_weight=-2", "at least 0.0"),
        ("model.free_bits=-0.5", "at least 0.0"),
        ("train.max_steps", "must look like section.key=value"),
    ],
)
def test_override_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        Config().apply_overrides([override])


def test_unknown_yaml_key_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  hiden_size: 12\n")
    with pytest.raises(ConfigError, match="model.hidden_size"):
        Config.from_yaml(p)


def test_missing_or_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Config.from_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.from_yaml(bad)


def test_shipped_configs_load_and_demo_yaml_matches_preset():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        Config.from_yaml(path)
    assert Config.from_yaml(ROOT / "configs" / "demo.yaml") == demo_config()


def test_all_keys_are_dotted():
    keys = all_keys()
    assert "train.max_steps" in keys and "model.latent_size" in keys and "data.train" in keys
