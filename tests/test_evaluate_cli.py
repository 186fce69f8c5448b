"""``textvae evaluate / score / impute / plot / analyze`` end to end, on one tiny model trained once."""

import dataclasses
import json
import math
from pathlib import Path

import pytest

from textvae.cli import main
from textvae.config import Config
from textvae.data.synthetic import write_corpus
from textvae.model.vae import TextVAE
from textvae.training.trainer import Trainer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVAL_KEYS = {"neg_elbo", "rec", "kl", "nll_iw", "ppl", "mi", "au", "num_sentences", "num_tokens"}
TEXT_KEYS = {"rec_bleu", "distinct_1", "distinct_2", "self_bleu"}


def train_tiny(run: Path, **model: object) -> Path:
    """A tiny VAE trained on the synthetic corpus into the run directory ``run`` (a few seconds)."""
    cfg = Config.from_dict(
        {
            "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
            "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4, **model},
            "train": {
                "output_dir": str(run),
                "max_steps": 12,
                "batch_size": 16,
                "eval_every": 6,
                "log_every": 2,
                "progress": False,
                "beta_warmup_steps": 10,
            },
        }
    )
    Trainer(cfg, log=lambda s: None).fit()
    return run


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("eval") / "run")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("evaldata")
    write_corpus(d / "test.txt", 24, seed=5)
    write_corpus(d / "labelled.jsonl", 48, seed=6, fmt="jsonl")
    write_corpus(d / "labelled.tsv", 30, seed=7, label="tense")
    return d


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok(args, capsys) -> tuple[str, str]:
    code, out, err = run(args, capsys)
    assert code == 0, err
    return out, err


def error_of(args, capsys) -> str:
    try:
        code, out, err = run(args, capsys)
    except SystemExit as e:  # argparse's own usage errors exit from inside the parser
        code, (out, err) = e.code, capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def evaluate_json(model, data, capsys, *extra) -> dict:
    args = ["evaluate", model, "--data", data, "--json", "--no-progress", "--samples", "8", "--max-length", "12"]
    out, _ = ok([*args, *extra], capsys)
    lines = out.strip().splitlines()
    assert len(lines) == 1, "--json prints one object"
    return json.loads(lines[0])


# -- evaluate -----------------------------------------------------------------------------------------
def test_evaluate_json_has_every_figure_and_they_are_sane(trained, data_dir, capsys):
    r = evaluate_json(trained, data_dir / "test.txt", capsys, "--iw-samples", "3")
    assert r.keys() >= EVAL_KEYS | TEXT_KEYS
    for k in EVAL_KEYS | TEXT_KEYS:
        assert isinstance(r[k], (int, float)) and math.isfinite(r[k]), k
    lines = (data_dir / "test.txt").read_text().splitlines()
    assert r["num_sentences"] == len(lines)
    assert r["num_tokens"] == sum(len(x.split()) + 1 for x in lines)  # word tokenizer; end tokens counted
    assert r["rec"] + r["kl"] == pytest.approx(r["neg_elbo"])
    assert r["ppl"] == pytest.approx(math.exp(r["nll_iw"] * r["num_sentences"] / r["num_tokens"]))
    assert r["kl"] >= 0 and r["mi"] >= -0.05 and 0 <= r["au"] <= 4 and r["ppl"] > 1
    assert 0 <= r["rec_bleu"] <= 100 and 0 <= r["self_bleu"] <= 100
    assert 0 < r["distinct_1"] <= 1 and 0 < r["distinct_2"] <= 1 and r["num_samples"] == 8


def test_evaluate_with_one_sample_is_the_negative_elbo(trained, data_dir, capsys):
    r = evaluate_json(trained, data_dir / "test.txt", capsys, "--iw-samples", "1", "--bleu-sentences", "0")
    # One importance sample is a single-sample ELBO (KL sampled instead of analytic): the same in expectation.
    assert r["nll_iw"] == pytest.approx(r["neg_elbo"], rel=0.02)
    assert r["rec_bleu"] is None and r["bleu_sentences"] == 0


def test_evaluate_table_and_progress(trained, data_dir, capsys):
    out, err = ok(["evaluate", trained, "--data", data_dir / "test.txt", "--iw-samples", "2", "--samples", "4"], capsys)
    for row in (
        "negative ELBO",
        "NLL (IW bound, K=2)",
        "perplexity",
        "mutual information",
        "active units",
        "self-BLEU",
    ):
        assert row in out
    assert "read 24 rows, evaluating 24" in err and "IW NLL (K=2)" in err  # progress bar on stderr


def test_evaluate_language_model_gives_exact_nll(trained, data_dir, tmp_path, capsys):
    vae = TextVAE.from_pretrained(trained)
    lm = TextVAE(dataclasses.replace(vae.config, use_latent=False), vae.tokenizer, vae.data_config)
    lm.save_pretrained(tmp_path / "lm")
    r = evaluate_json(tmp_path / "lm", data_dir / "test.txt", capsys)
    assert r["model"] == "lm" and r["kl"] == 0 and r["au"] == 0 and r["rec_bleu"] is None
    assert r["nll_iw"] == pytest.approx(r["neg_elbo"]) == pytest.approx(r["rec"])


def test_evaluate_conditional_model_reads_its_labels(trained, data_dir, tmp_path, capsys):
    vae = TextVAE.from_pretrained(trained)
    cfg = dataclasses.replace(vae.config, conditional=True, num_labels=2)
    cvae = TextVAE(cfg, vae.tokenizer, dataclasses.replace(vae.data_config, label_column="tense"))
    cvae.label_names = ["past", "present"]  # "future" rows were never seen: dropped, and said so
    cvae.save_pretrained(tmp_path / "cvae")
    code, out, err = run(
        ["evaluate", tmp_path / "cvae", "--data", data_dir / "labelled.tsv", "--iw-samples", "2", "--json"], capsys
    )
    assert code == 0, err
    r = json.loads(out)
    assert r["data"]["unknown_label"] > 0 and r["num_sentences"] == 30 - r["data"]["unknown_label"]
    assert "with a label unseen in training dropped" in err


def test_evaluate_keeps_long_sentences_and_reports_blank_lines(trained, tmp_path, capsys):
    long = " ".join(["the dog likes every car ."] * 12)  # 72 words > the model's data.max_length (50)
    f = tmp_path / "mixed.txt"
    f.write_text(f"the dog likes every car .\n\n{long}\n   \n")
    r = evaluate_json(trained, f, capsys, "--iw-samples", "1")
    assert r["num_sentences"] == 2 and r["data"]["blank"] == 2
    r = evaluate_json(trained, f, capsys, "--iw-samples", "1", "--length-filter")
    assert r["num_sentences"] == 1 and r["data"]["dropped_long"] == 1


# -- score --------------------------------------------------------------------------------------------
def test_score_sorts_least_likely_first(trained, data_dir, capsys):
    args = ["score", trained, "--data", data_dir / "test.txt", "--iw-samples", "2", "--json", "--no-progress"]
    recs = [json.loads(x) for x in ok(args, capsys)[0].splitlines()]
    lines = (data_dir / "test.txt").read_text().splitlines()
    assert len(recs) == len(lines) and [r["rank"] for r in recs] == list(range(1, len(lines) + 1))
    per_tok = [r["nll_per_token"] for r in recs]
    assert per_tok == sorted(per_tok, reverse=True)
    assert all(
        lines[r["row"] - 1] == r["text"] and r["nll_per_token"] * r["tokens"] == pytest.approx(r["nll"]) for r in recs
    )

    recs = [json.loads(x) for x in ok([*args, "--sort", "nll", "--ascending", "--top", "5"], capsys)[0].splitlines()]
    nll = [r["nll"] for r in recs]
    assert len(recs) == 5 and nll == sorted(nll)


def test_score_table(trained, data_dir, capsys):
    out, _ = ok(
        ["score", trained, "--data", data_dir / "test.txt", "--iw-samples", "1", "--bound", "elbo", "--top", "3"],
        capsys,
    )
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["rank", "row", "nll"] and len(lines) == 4


# -- impute -------------------------------------------------------------------------------------------
def test_impute_fills_every_blank_and_keeps_the_rest(trained, capsys):
    sentences = ["The busy ___ likes every ___ house .", "___ dogs Zyzzyva the ball ___"]  # Zyzzyva: unknown word
    out, _ = ok(["impute", trained, *sentences, "--json", "--rounds", "3"], capsys)
    recs = [json.loads(x) for x in out.splitlines()]
    assert len(recs) == 2
    for src, r in zip(sentences, recs):
        assert "___" not in r["text"] and len(r["fills"]) == src.count("___")
        assert all(f and " " not in f and f != "<unk>" for f in r["fills"])
        words, filled = src.split(), r["text"].split()
        assert len(words) == len(filled)
        assert [w for w in words if w != "___"] == [f for w, f in zip(words, filled) if w != "___"]
        assert 1 <= r["rounds"] <= 3 and math.isfinite(r["nll"])


# -- plot and analyze ---------------------------------------------------------------------------------
def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_plot_writes_pngs(trained, tmp_path, capsys):
    out, _ = ok(["plot", trained, "--out", tmp_path / "plots"], capsys)
    paths = [Path(x) for x in out.split()]
    assert {p.name for p in paths} == {"training_curves.png", "kl_per_dim.png"}
    for p in paths:
        assert p.parent == tmp_path / "plots"
        assert_png(p)


def test_analyze_writes_maps_and_scores(trained, data_dir, tmp_path, capsys):
    args = ["analyze", trained, "--data", data_dir / "labelled.jsonl", "--out", tmp_path / "an"]
    out, _ = ok([*args, "--label-column", "tense", "--label-column", "type", "--json"], capsys)
    recs = [json.loads(x) for x in out.splitlines()]
    assert [r["column"] for r in recs] == ["tense", "type"]
    for r in recs:
        assert 0 <= r["kmeans_nmi"] <= 1 and 1 / r["num_classes"] <= r["kmeans_purity"] <= 1
        assert 0 <= r["probe_accuracy"] <= 1 and 0 <= r["probe_majority"] <= 1
        assert r["probe_train"] + r["probe_test"] == 48
        assert_png(Path(r["plot"]))
    out, _ = ok([*args, "--label-column", "sentiment", "--map", "pca"], capsys)
    assert "NMI" in out and "linear probe" in out and (tmp_path / "an" / "latent_map_sentiment.png").is_file()


def test_a_mixture_prior_model_through_evaluate_analyze_and_sample(data_dir, tmp_path, capsys):
    """Every command works with another prior; analyze also scores the prior's components as clusters."""
    run = train_tiny(tmp_path / "mog", prior="mog", prior_components=2, posterior="iaf")
    out, _ = ok(["evaluate", run, "--data", data_dir / "test.txt", "--iw-samples", "4", "--json"], capsys)
    r = json.loads(out)
    assert r["bits_per_word"] == pytest.approx(math.log2(r["ppl"])) and r["rate_bits"] > 0
    out, _ = ok(["evaluate", run, "--data", data_dir / "test.txt", "--iw-samples", "2"], capsys)
    assert "bits per word" in out and "rate (KL)" in out and "distortion" in out
    args = ["analyze", run, "--data", data_dir / "labelled.jsonl", "--out", tmp_path / "an", "--map", "pca"]
    out, _ = ok([*args, "--label-column", "type", "--json"], capsys)
    rec = json.loads(out)
    assert 0 <= rec["prior_nmi"] <= 1 and 1 <= rec["prior_components_used"] <= 2
    out, _ = ok([*args, "--label-column", "type"], capsys)
    assert "prior components" in out
    out, _ = ok(["sample", run, "-n", "3", "--seed", "0", "--raw"], capsys)
    assert len(out.splitlines()) == 3


# -- bad input ----------------------------------------------------------------------------------------
def test_bad_inputs_are_one_line_errors(trained, data_dir, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "notamodel").mkdir()
    test = data_dir / "test.txt"
    assert "file not found" in error_of(["evaluate", trained, "--data", tmp_path / "missing.txt"], capsys)
    assert "no sentence" in error_of(["score", trained, "--data", tmp_path / "empty.txt"], capsys)
    assert "not a textvae model" in error_of(["evaluate", tmp_path / "notamodel", "--data", test], capsys)
    assert "no blank" in error_of(["impute", trained, "a sentence without blanks"], capsys)
    assert "metrics.jsonl" in error_of(["plot", tmp_path / "notamodel"], capsys)
    assert "no column" in error_of(["analyze", trained, "--data", data_dir / "labelled.jsonl"], capsys)
    assert "plain text" in error_of(["analyze", trained, "--data", test, "--label-column", "x"], capsys)
    assert "must be >= 1" in error_of(["score", trained, "--data", test, "--iw-samples", "0"], capsys)
