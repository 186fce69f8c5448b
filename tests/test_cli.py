"""End-to-end runs of the ``textvae`` command on generated data, and its answers to bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from textvae.cli import main
from textvae.data.synthetic import write_corpus

TINY = [
    "model.embedding_size=16",
    "model.hidden_size=24",
    "model.latent_size=4",
    "train.max_steps=4",
    "train.eval_every=2",
    "train.batch_size=16",
    "train.progress=false",
]


@pytest.fixture
def config_file(tmp_path) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text("data:\n  valid_fraction: 0.1\nmodel:\n  latent_size: 4\n")
    return p


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "train.txt", 200, seed=1)


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_on_a_text_file(tmp_path, config_file, corpus, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run(["train", config_file, f"data.train={corpus}", f"train.output_dir={out_dir}", *TINY], capsys)
    assert code == 0, err
    assert "validation -ELBO" in out
    assert (out_dir / "best" / "model.safetensors").is_file()
    recs = [json.loads(x) for x in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert recs[-1]["split"] == "valid" and recs[-1]["step"] == 4


def test_the_own_corpus_config_trains_a_cased_untokenized_corpus_with_its_rate_target(tmp_path, capsys):
    """configs/sentences.yaml as the README gives it, only smaller: lowercasing, Treebank words, the rate
    target, cosine decay and the time guard in one run."""
    from textvae.model.vae import TextVAE

    corpus = tmp_path / "mine.txt"
    corpus.write_text("".join(f"The {w} dog, Sadly, Saw {n} Cats!\n" for w in ("big", "old", "red") for n in range(40)))
    cfg = Path(__file__).resolve().parents[1] / "configs" / "sentences.yaml"
    args = ["train", cfg, f"data.train={corpus}", f"train.output_dir={tmp_path / 'run'}", *TINY]
    code, out, err = run([*args, "model.target_rate=8", "train.beta_warmup_steps=2"], capsys)
    assert code == 0, err
    model = TextVAE.from_pretrained(tmp_path / "run")
    assert model.free_bits_floor == 8 / 4 and model.data_config.word_tokenizer == "treebank"
    # the config's adaptive softmax head (2,000 tokens) is larger than this vocabulary: a plain softmax
    assert model.config.adaptive_softmax == 2000 and model.config.vocab_size < 2000
    assert type(model.decoder.head).__name__ == "OutputHead"
    assert model.decode_ids(model.token_ids(["The dog, sadly!"])) == ["the dog , sadly !"]


def error_of(args, capsys) -> str:
    code, _, err = run(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_unknown_key_suggests_the_nearest(config_file, capsys):
    assert "did you mean 'train.max_steps'" in error_of(["train", config_file, "train.max_step=3"], capsys)


def test_wrong_type(config_file, capsys):
    assert "expects an integer" in error_of(["train", config_file, "train.max_steps=lots"], capsys)


def test_missing_config_and_corpus(tmp_path, config_file, capsys):
    assert "not found" in error_of(["train", tmp_path / "nope.yaml"], capsys)
    msg = error_of(["train", config_file, f"data.train={tmp_path / 'missing.txt'}", *TINY], capsys)
    assert "missing.txt" in msg


@pytest.mark.parametrize(
    ("content", "expect"),
    [(b"", "no sentences"), (b"\n\n   \n\n", "no sentences"), (b"caf\xe9 au lait\nhello world\n", "UTF-8")],
)
def test_bad_corpora(tmp_path, config_file, capsys, content, expect):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    out_dir = tmp_path / "run"
    msg = error_of(["train", config_file, f"data.train={p}", f"train.output_dir={out_dir}", *TINY], capsys)
    assert expect in msg
    assert not (out_dir / "best").exists()


def test_very_long_line_is_handled(tmp_path, config_file, corpus, capsys):
    p = tmp_path / "long.txt"
    p.write_text(corpus.read_text() + "word " * 20_000 + "\n")  # a 100,000-character line
    code, _, err = run(["train", config_file, f"data.train={p}", f"train.output_dir={tmp_path / 'r'}", *TINY], capsys)
    assert code == 0, err


def test_label_column_that_does_not_exist(tmp_path, config_file, capsys):
    p = write_corpus(tmp_path / "c.jsonl", 50, fmt="jsonl")
    msg = error_of(["train", config_file, f"data.train={p}", "data.label_column=colour", *TINY], capsys)
    assert "colour" in msg


def test_resume_from_something_that_is_not_a_run(tmp_path, config_file, capsys):
    (tmp_path / "notarun").mkdir()
    assert "nothing to resume" in error_of(["train", config_file, f"train.resume={tmp_path / 'notarun'}"], capsys)


def test_existing_run_is_not_touched(tmp_path, config_file, corpus, capsys):
    out_dir = tmp_path / "run"
    args = ["train", config_file, f"data.train={corpus}", f"train.output_dir={out_dir}", *TINY]
    assert run(args, capsys)[0] == 0
    before = {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    assert "already holds a run" in error_of(args, capsys)
    assert before == {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}


def test_module_entry_point_and_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "textvae", "train", str(tmp_path / "missing.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr
    assert subprocess.run([sys.executable, "-m", "textvae", "--help"], capture_output=True).returncode == 0


def test_demo_command_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = [o for o in TINY if not o.startswith("train.batch_size")]
    args = ["demo", "data.synthetic_size=200", "train.eval_max_sentences=20", *tiny]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "reconstructions" in out and "samples from the prior" in out and "interpolation" in out
    assert (tmp_path / "runs" / "demo" / "best" / "config.json").is_file()
    # A second demo never overwrites the first run.
    assert run(args, capsys)[0] == 0
    assert (tmp_path / "runs" / "demo-2" / "best" / "config.json").is_file()


def test_demo_of_a_language_model(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = [o for o in TINY if not o.startswith("train.batch_size")]
    code, out, err = run(["demo", "data.synthetic_size=200", "model.use_latent=false", *tiny], capsys)
    assert code == 0, err
    assert "samples from the language model" in out


def test_demo_of_a_conditional_vae(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = [o for o in TINY if not o.startswith("train.batch_size")]
    args = ["demo", "data.synthetic_size=200", "model.conditional=true", "data.label_column=sentiment", *tiny]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "reconstructions (input -> output) (label negative)" in out and "interpolation" in out
