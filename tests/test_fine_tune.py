"""``train.init_from``: a new run that starts from a trained model's weights and tokenizer on a new corpus."""

import pytest
import torch

from textvae.cli import main
from textvae.config import Config
from textvae.data.synthetic import generate
from textvae.model.vae import TextVAE
from textvae.training.trainer import Trainer

SETTINGS = {
    "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1, "lowercase": True},
    "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4, "word_dropout": 0.2},
    "train": {"max_steps": 10, "batch_size": 16, "eval_every": 10, "progress": False},
}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    run = tmp_path_factory.mktemp("pre") / "run"
    Trainer(Config.from_dict(SETTINGS).apply_overrides([f"train.output_dir={run}"]), log=lambda s: None).fit()
    return run / "best"


@pytest.fixture
def new_corpus(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("\n".join(s.text.upper() for s in generate(200, seed=7)) + "\n")
    return path


def test_fine_tuning_starts_from_the_models_weights_tokenizer_and_architecture(pretrained, new_corpus, tmp_path):
    asked = Config.from_dict(SETTINGS).apply_overrides(
        [
            f"train.init_from={pretrained}",
            f"data.train={new_corpus}",
            f"train.output_dir={tmp_path / 'ft'}",
            "data.lowercase=false",  # the model's text preparation wins
            "model.hidden_size=64",  # the model's architecture wins
            "model.word_dropout=0.5",  # an objective knob: the fine-tuning run's own
            "train.lr=1e-30",
            "train.max_steps=1",
            "train.eval_every=1",
        ]
    )
    lines: list[str] = []
    trainer = Trainer(asked, log=lines.append)
    trainer.fit()
    base = TextVAE.from_pretrained(pretrained)
    tuned = TextVAE.from_pretrained(tmp_path / "ft" / "last")
    assert tuned.tokenizer.fingerprint() == base.tokenizer.fingerprint()
    assert tuned.config.hidden_size == 24 and tuned.config.word_dropout == 0.5
    assert tuned.data_config.lowercase is True and tuned.data_config.train == str(new_corpus)
    a, b = base.state_dict(), tuned.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # lr ~0: still the pretrained weights
    assert any("fine-tuning" in line for line in lines)
    # The new corpus (upper-cased) is read as the model's was (lower-cased): few unknown words.
    ids = torch.cat([trainer.data.train.collate(list(range(16))).input_ids.flatten()])
    assert (ids == base.tokenizer.unk_id).float().mean() < 0.05


def test_fine_tuning_from_the_cli_and_a_missing_model(pretrained, new_corpus, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    Config.from_dict(SETTINGS).to_yaml(cfg)
    out = tmp_path / "ft"
    assert (
        main(
            ["train", str(cfg), f"train.init_from={pretrained}", f"data.train={new_corpus}", f"train.output_dir={out}"]
        )
        == 0
    )
    assert (out / "best" / "model.safetensors").is_file()
    capsys.readouterr()
    code = main(["train", str(cfg), f"train.init_from={tmp_path / 'nope'}", f"train.output_dir={tmp_path / 'x'}"])
    assert code == 2 and "train.init_from: model directory not found" in capsys.readouterr().err
