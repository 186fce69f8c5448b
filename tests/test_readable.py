"""Readable output: detokenized, recased text by default (``--raw`` for the tokens), banned tokens, CTRL's
repetition penalty, a minimum length, and decoding flags that contradict each other refused."""

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from textvae.cli import main
from textvae.config import Config, ModelConfig
from textvae.data.detokenize import detokenize, recase
from textvae.model.decoding import DecodingConfig, generate
from textvae.model.vae import TextVAE
from textvae.training.trainer import Trainer

V, BOS, EOS, UNK = 30, 1, 2, 3
STRATEGIES = [
    DecodingConfig(max_length=10),
    DecodingConfig(strategy="sample", max_length=10),
    DecodingConfig(strategy="beam", beam_size=3, max_length=10),
]


# -- detokenizing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "readable"),
    [
        ("a man is in a blue shirt .", "A man is in a blue shirt."),
        ("will my dogs sadly watch that red car ?", "Will my dogs sadly watch that red car?"),
        ("i think ( maybe ) i 'm right , too !", "I think (maybe) I'm right, too!"),
        ("<unk> said the company .", "<unk> said the company."),
        ("the iPhone is new .", "the iPhone is new."),  # cased text keeps its casing; punctuation still joins
        ("The City of London .", "The City of London."),
    ],
)
def test_detokenize(raw, readable):
    assert detokenize(raw) == readable


def test_recase_leaves_cased_text_alone():
    assert recase("iPhone sales rose") == "iPhone sales rose"
    assert recase("i saw it") == "I saw it"


WORDS = st.sampled_from(["the", "cat", "i", "sleeps", "a", "dog", ".", ",", "?", "!", "(", ")", "3", "<unk>"])


@settings(max_examples=200, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=12))
def test_detokenizing_changes_only_spacing_and_case(words):
    raw = " ".join(words)
    assert detokenize(raw).replace(" ", "").lower() == raw.replace(" ", "").lower()


# -- logits constraints in every strategy ---------------------------------------------------------------


def tiny_model(boost: int, by: float = 100.0) -> TextVAE:
    """A random tiny model whose decoder prefers token ``boost`` above all others."""
    torch.manual_seed(0)
    m = TextVAE(ModelConfig(vocab_size=V, embedding_size=8, hidden_size=12, latent_size=4)).eval()
    with torch.no_grad():
        m.decoder.head.output.bias[boost] += by
    return m


def run(m: TextVAE, cfg: DecodingConfig, n: int = 6) -> list[list[int]]:
    z = torch.randn(n, 4, generator=torch.Generator().manual_seed(1))
    return generate(m.decoder, z, n, BOS, EOS, cfg, torch.Generator().manual_seed(2), unk_id=UNK)


@pytest.mark.parametrize("cfg", STRATEGIES, ids=lambda c: c.strategy)
def test_banned_tokens_never_appear(cfg):
    m = tiny_model(UNK)
    assert all(UNK in out for out in run(m, cfg))  # the model wants <unk> everywhere
    banned = run(m, DecodingConfig(**{**cfg.__dict__, "ban_unk": True, "bad_ids": (5, 6)}))
    assert not any(t in (UNK, 5, 6) for out in banned for t in out)


@pytest.mark.parametrize("cfg", STRATEGIES, ids=lambda c: c.strategy)
def test_min_length(cfg):
    m = tiny_model(EOS)
    assert all(out == [] for out in run(m, cfg))  # the end token comes at once
    outs = run(m, DecodingConfig(**{**cfg.__dict__, "min_length": 4}))
    assert all(len(out) == 4 for out in outs)


@pytest.mark.parametrize("cfg", STRATEGIES, ids=lambda c: c.strategy)
def test_repetition_penalty_stops_a_token_from_repeating(cfg):
    m = tiny_model(7, by=4.0)
    assert all(out.count(7) >= 5 for out in run(m, cfg))
    outs = run(m, DecodingConfig(**{**cfg.__dict__, "repetition_penalty": 1e4}))
    if cfg.strategy == "sample":  # a penalised token keeps a small chance: repeats become rare
        assert sum(out.count(7) for out in outs) <= 1.5 * len(outs), outs
    else:
        assert all(out.count(7) <= 1 for out in outs), outs


def test_the_end_token_cannot_be_banned():
    with pytest.raises(ValueError, match="end token cannot be banned"):
        run(tiny_model(5), DecodingConfig(bad_ids=(EOS,)))


# -- the CLI ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("m") / "run"
    settings_ = {
        "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
        "model": {"embedding_size": 16, "hidden_size": 32, "latent_size": 4},
        "train": {"max_steps": 60, "batch_size": 16, "eval_every": 60, "progress": False, "lr": 0.01},
    }
    Trainer(Config.from_dict(settings_).apply_overrides([f"train.output_dir={run_dir}"]), log=lambda s: None).fit()
    return run_dir / "best"


def cli_texts(args: list[str], capsys) -> list[str]:
    assert main([*args, "--json"]) == 0
    return [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]


def test_output_is_readable_by_default_and_raw_on_request(model_dir, capsys):
    raw = cli_texts(["sample", str(model_dir), "-n", "8", "--raw"], capsys)
    readable = cli_texts(["sample", str(model_dir), "-n", "8"], capsys)
    assert readable == [detokenize(t) for t in raw]
    assert any(t.endswith(" .") or t.endswith(" ?") for t in raw)
    assert not any(t.endswith(" .") or t.endswith(" ?") for t in readable)
    assert all(t[:1].isupper() for t in readable if t[:1].isalpha())
    again = cli_texts(["reconstruct", str(model_dir), "the cat happily visits the park ."], capsys)
    assert again[0][:1].isupper() or not again[0]


def test_ban_words_from_the_cli(model_dir, capsys):
    texts = cli_texts(["sample", str(model_dir), "-n", "8", "--raw", "--ban", "the", "--no-unk"], capsys)
    assert not any(w in ("the", "<unk>") for t in texts for w in t.split())
    assert main(["sample", str(model_dir), "--ban", "zzzunknown"]) == 2
    assert "--ban 'zzzunknown': not in the model's vocabulary" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--beam", "4", "--top-p", "0.9"], "--top-p applies to sampling; it cannot be combined with --beam"),
        (["--strategy", "greedy", "--temperature", "2"], "--temperature does not apply to --strategy greedy"),
        (
            ["--strategy", "beam", "--top-k", "5"],
            "--top-k applies to sampling; it cannot be combined with --strategy beam",
        ),
        (
            ["--strategy", "sample", "--beam", "3"],
            "--beam applies to beam search; it cannot be combined with --strategy sample",
        ),
        (["--repetition-penalty", "0.5"], "--repetition-penalty must be a finite number >= 1"),
        (["--min-length", "60"], "--min-length must be in [0, --max-length=50]"),
    ],
)
def test_contradicting_or_bad_decoding_flags_are_refused(model_dir, capsys, flags, message):
    assert main(["sample", str(model_dir), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
