"""The speed benchmark runs end to end on a tiny model and its FLOP count is right (no timing asserted)."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from textvae.config import ModelConfig
from textvae.inference.style_edit import EditSettings

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_flops_count_matrix_products_of_real_positions():
    perf = load("performance")
    m = ModelConfig(vocab_size=100, embedding_size=8, hidden_size=16, latent_size=4, z_conditioning="both")
    words = np.array([3, 5])
    enc = 2 * (2 * 4 * 16 * (8 + 16))  # two directions of one LSTM step
    dec = 2 * 4 * 16 * (8 + 4 + 16) + 2 * 16 * 100  # LSTM step on [embedding; z] + output projection
    expected = 3 * ((5 + 7) * enc + (4 + 6) * dec)
    assert perf.training_flops(m, words) == expected
    assert perf.training_flops(ModelConfig(encoder="pretrained"), words) is None


def test_training_flops_of_an_adaptive_softmax_count_the_tail_at_rare_targets_only():
    perf = load("performance")
    full = ModelConfig(vocab_size=100, embedding_size=8, hidden_size=16, latent_size=4)
    adaptive = ModelConfig(vocab_size=100, embedding_size=8, hidden_size=16, latent_size=4, adaptive_softmax=20)
    words = np.array([3, 5])
    positions = 4 + 6
    head, tail = 2 * 16 * 21, 2 * 16 * 4 + 2 * 4 * 80  # head + tail entry; projection to 16 // 4, 80 rare ids
    saved = 3 * (positions * 2 * 16 * 100 - positions * head - 3 * tail)
    assert perf.training_flops(full, words) - perf.training_flops(adaptive, words, tail_targets=3) == saved


def test_the_training_part_compares_one_switch_side_by_side(tmp_path):
    perf = load("performance")
    argv = [
        "--config", "configs/demo.yaml", "data.synthetic_size=300", "model.hidden_size=16",
        "model.embedding_size=8", "model.adaptive_softmax=20", "--steps", "2", "--warmup", "1", "--repeats", "1",
        "--parts", "train", "--work-dir", str(tmp_path / "work"), "--against", "model.adaptive_softmax=0",
    ]  # fmt: skip
    train = perf.main(argv)["train"]
    assert set(train) >= {"optimised", "against", "speedup"} and "plain" not in train
    assert train["against_overrides"] == ["model.adaptive_softmax=0"]
    assert train["speedup"] == train["optimised"]["tokens_per_sec"] / train["against"]["tokens_per_sec"]


def test_training_flops_of_a_transformer_decoder():
    """Per position: QKV, output and two feed-forward products per layer; attention 4 x width per key seen
    (causal: the positions up to it, plus the z memory slot); the vocabulary projection."""
    perf = load("performance")
    m = ModelConfig(
        vocab_size=100, embedding_size=16, hidden_size=16, latent_size=4, decoder="transformer",
        decoder_layers=2, ffn_size=24, z_conditioning="init", bidirectional=False,
    )  # fmt: skip
    words = np.array([2])
    enc = 3 * 4 * (2 * 4 * 16 * (16 + 16))  # <s> w w </s>: one LSTM direction
    per_position = 2 * (2 * 16 * 48 + 2 * 16 * 16 + 2 * 2 * 16 * 24) + 2 * 16 * 100
    keys = (1 + 2 + 3) + 3 * 1  # causal over 3 decoder positions, plus one memory slot each
    assert perf.training_flops(m, words) == enc + 3 * (3 * per_position + 2 * 4 * 16 * keys)


def test_performance_benchmark_runs_and_writes_json(tmp_path):
    perf = load("performance")
    out = tmp_path / "perf.json"
    argv = [
        "--config", "configs/demo.yaml", "data.synthetic_size=400", "model.hidden_size=32",
        "model.embedding_size=16", "--steps", "2", "--warmup", "1", "--repeats", "1", "--num", "8",
        "--single", "2", "--max-length", "10", "--iw-samples", "4", "--iw-sentences", "2",
        "--work-dir", str(tmp_path / "work"), "--json", str(out), "--parts", "train,generate,iwnll,lstm",
    ]  # fmt: skip
    result = perf.main(argv)
    assert json.loads(out.read_text())["train"]["speedup"] == result["train"]["speedup"] > 0
    assert result["train"]["plain"]["padding_fraction"] >= result["train"]["optimised"]["padding_fraction"]
    assert 0 < result["train"]["optimised"]["fraction_of_peak"] < 5
    machine, optimised = result["machine"], result["train"]["optimised"]
    assert machine["matmul_peak_gflops_bf16"] > 0 and machine["matmul_peak_gflops_fp32"] > 0
    key = {"bfloat16": "matmul_peak_gflops_bf16", "float32": "matmul_peak_gflops_fp32"}[optimised["precision"]]
    assert optimised["peak_gflops"] == machine[key]
    assert optimised["precision"] == ("bfloat16" if machine["native_bf16"] else "float32")
    assert result["train"]["plain"]["precision"] == "float32" and optimised["spread"] >= 1
    precisions = ["float32", "bfloat16"] if machine["native_bf16"] else ["float32"]
    for precision in precisions:
        generated = result["generate"][precision]
        assert set(generated) >= {"greedy_batched", "greedy_batch1", "nucleus_batched", "nucleus_batch1"}
        assert 0 < generated["mean_greedy_length"] <= 10
        assert result["iwnll"][precision]["batched_sentences_per_sec"] > 0
    lstm_kinds = (
        {"native float32", "native bfloat16", "fused bfloat16"} if machine["native_bf16"] else {"native float32"}
    )
    assert set(result["lstm"]) == lstm_kinds and all(v > 0 for v in result["lstm"].values())
    if machine["native_bf16"]:  # the same sentences and samples in both precisions
        assert result["iwnll"]["bf16_relative_difference"] < 0.01


def test_the_gpu_script_is_valid_bash_and_refuses_clearly_without_a_gpu(tmp_path):
    """benchmarks/gpu.sh is run on a GPU machine only; here it must parse, and on a machine without CUDA
    say so in one line, exit 2 and write nothing."""
    import os
    import subprocess
    import sys

    script = ROOT / "benchmarks" / "gpu.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    fake = tmp_path / "python"  # a Python whose torch sees no GPU, whatever this machine has
    fake.write_text(f'#!/bin/sh\nCUDA_VISIBLE_DEVICES="" exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(script), str(out)], capture_output=True, text=True, env={**os.environ, "PYTHON": str(fake)}
    )
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_a_dry_run_of_the_gpu_script_writes_every_result(tmp_path):
    """DEVICE=cpu with a tiny model runs every part of benchmarks/gpu.sh (about a minute)."""
    import os
    import subprocess
    import sys

    tiny = (
        "model.hidden_size=16 model.embedding_size=8 model.latent_size=4 model.num_heads=2 model.ffn_size=32 "
        "data.synthetic_size=400 data.vocab_size=200 train.max_steps=20 train.batch_size=16"
    )
    env = {**os.environ, "DEVICE": "cpu", "PYTHON": sys.executable, "EXTRA": tiny, "PTB_DIR": str(tmp_path / "none")}
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(out)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    names = {"machine", "train-lstm", "train-transformer", "generate-iwnll", "ptb-run"}
    assert {p.stem for p in out.glob("*.json")} == names
    assert json.loads((out / "ptb-run.json").read_text())["steps"] == 20
    assert json.loads((out / "machine.json").read_text())["corpus"].startswith("synthetic")
    assert not (out / "ptb-run").exists()  # no checkpoints left behind


TINY = ["data.synthetic_size=300", "model.hidden_size=16", "model.embedding_size=8", "model.latent_size=4"]


def test_rate_distortion_sweep_writes_points_table_and_curve(tmp_path):
    rd = load("rate_distortion")
    out = tmp_path / "rd"
    argv = [
        "configs/demo.yaml", *TINY, "--test", "synthetic", "--max-test-sentences", "12", "--max-steps", "4",
        "--iw-samples", "2", "--betas", "0.5", "2", "--runs-dir", str(tmp_path / "runs"), "--out", str(out),
    ]  # fmt: skip
    rd.main(argv)
    points = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(points) == {"beta-0.5", "beta-2", "lm"}
    for p in points.values():
        assert p["rate_bits"] + p["distortion_bits"] == pytest.approx(p["neg_elbo"] / np.log(2))
        assert p["steps"] == 4 and p["num_sentences"] == 12
    assert points["lm"]["rate_bits"] == 0
    table = (out / "rate_distortion.md").read_text()
    assert "| β = 0.5 |" in table and "| β = 2 |" in table and "language model" in table and "--max-steps 4" in table
    assert (out / "rate_distortion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = (out / "beta-2.json").read_text()
    rd.main(argv)  # a finished point is kept, not redone
    assert (out / "beta-2.json").read_text() == before


def test_priors_benchmark_measures_each_part_once(tmp_path):
    pr = load("priors")
    out = tmp_path / "pr"
    argv = [
        "--out", str(out), "--runs", str(tmp_path / "runs"), "--priors", "normal", "mog", "--seeds", "0",
        "--steps", "3", "--test-sentences", "20", "--prior-samples", "6", "--iw-samples", "2",
        *[f"--override={o}" for o in TINY],
    ]  # fmt: skip
    pr.main(argv)
    normal, mog = (json.loads((out / f"{p}-s0.json").read_text()) for p in ("normal", "mog"))
    assert "prior_nmi" not in normal and 0 <= mog["prior_nmi"] <= 1 and mog["prior_components_used"] >= 1
    for r in (normal, mog):
        assert 0 <= r["kmeans_nmi"] <= 1 and 0 <= r["prior_parsed"] <= 1 and r["nll_iw"] > 0
    summary = (out / "summary.md").read_text()
    assert "| normal | 1 |" in summary and "| mog | 1 |" in summary


def styled_models(tmp_path: Path, sentences: int) -> dict[str, Path]:
    """One file of synthetic sentences per sentiment, an untrained tiny VAE and language model on them:
    ``{"negative": file, "positive": file, "vae": dir, "lm": dir}``."""
    import torch

    from textvae.config import DataConfig
    from textvae.data import synthetic
    from textvae.data.tokenizer import train_tokenizer
    from textvae.model.vae import TextVAE

    sents = synthetic.generate(sentences, seed=9)
    paths = {}
    for style in ("negative", "positive"):
        paths[style] = tmp_path / f"{style}.txt"
        paths[style].write_text("".join(s.text + "\n" for s in sents if s.factors["sentiment"] == style))
    dcfg = DataConfig(lowercase=True, max_length=20)
    tok = train_tokenizer([s.text for s in sents], dcfg)
    for name, use_latent in (("vae", True), ("lm", False)):
        torch.manual_seed(0)
        cfg = ModelConfig(vocab_size=tok.vocab_size, embedding_size=8, hidden_size=12, latent_size=3,
                          use_latent=use_latent)  # fmt: skip
        TextVAE(cfg, tok, dcfg).save_pretrained(tmp_path / name)
        paths[name] = tmp_path / name
    return paths


def test_edit_settings_benchmark_scores_each_setting_on_sentences_past_start(tmp_path):
    bench = load("edit_settings")
    files = styled_models(tmp_path, 200)
    out = tmp_path / "settings.json"
    args = ["--model", str(files["vae"]), "--lm", str(files["lm"]), "--out", str(out),
            "--style", f"negative={files['negative']}", "--style", f"positive={files['positive']}",
            "--start", "10", "--n", "8"]  # fmt: skip
    second = ["--second-judge", f"negative={files['negative']}", "--second-judge", f"positive={files['positive']}"]
    edit_lm = ["--edit-lm", str(files["lm"])]
    bench.main([*args, *second, *edit_lm, "--setting", "alpha=2,max_edits=2", "--setting", "alpha=1,goal=1.5"])
    figures = json.loads(out.read_text())
    assert set(figures["second_judge_on_real"]) == {"negative", "positive"}
    assert [s["setting"] for s in figures["settings"]] == ["alpha=2,max_edits=2", "alpha=1,goal=1.5"]
    first = figures["settings"][0]["resolved"]  # every field spelled out, defaults included
    assert first == {"alpha": 2.0, **dataclasses.asdict(EditSettings(max_edits=2)), "edit_lm": str(files["lm"])}
    for s in figures["settings"]:
        assert len(s["rows"]) == 2 and all(r["n"] == 8 for r in s["rows"])
        assert 0 <= s["target_share"] <= 1 and 0 <= s["bleu"] <= 100 and s["fluency_ratio"] > 0
        assert s["second_judge_share"] == sum(r["second_judge_share"] for r in s["rows"]) / 2
    for bad, message in (("alpha=1,edits=3", "unknown --setting key 'edits'"), ("goal=2", "needs alpha")):
        with pytest.raises(SystemExit, match=message):
            bench.main([*args, "--setting", bad])


def test_latent_use_benchmark_writes_every_figure(tmp_path):
    bench = load("latent_use")
    files = styled_models(tmp_path, 120)
    out = tmp_path / "out"
    bench.main([
        "--model", str(files["vae"]), "--lm", str(files["lm"]), "--edit-lm", str(files["lm"]), "--out", str(out),
        "--style", f"negative={files['negative']}", "--style", f"positive={files['positive']}",
        "--alphas", "0", "1", "--transfer", "10", "--reconstruct", "20", "--pairs", "4", "--steps", "4",
    ])  # fmt: skip
    figures = json.loads((out / "latent_use.json").read_text())
    modes = ("edit", "search", "calibrated", "uniform", "local")
    for mode in modes:  # every shift mode by default, the first one's plot unsuffixed
        t = figures["transfer"][mode]
        assert [r["alpha"] for r in t["summary"]] == [0.0, 1.0]
        assert len(t["rows"]) == 4 and t["picked_alpha"] in (0.0, 1.0) and {r["shift"] for r in t["rows"]} == {mode}
        assert all(r["fluency_ratio"] > 0 for r in t["rows"])  # --lm given: the outputs' fluency too
    assert figures["reconstruction"]["n"] == 20 and figures["fluency"]["pairs"] == 4
    pngs = ("transfer_tradeoff.png", "transfer_tradeoff_calibrated.png", "transfer_tradeoff_uniform.png")
    for png in (*pngs, "transfer_tradeoff_local.png", "transfer_tradeoff_search.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "latent_use.md").read_text()
    assert md.count("(picked)") == len(modes) and md.count("LM NLL vs sources") == len(modes)
    with pytest.raises(SystemExit, match="NAME=FILE"):
        bench.main(["--model", str(tmp_path / "vae"), "--out", str(out), "--style", "negative"])


def test_ptb_table_keeps_one_record_per_row_and_builds_the_table_from_them(tmp_path):
    """Each row's JSON has the issue's keys; RESULTS.md is made from whatever rows the folder holds, ours beside
    the published figure, each row with its own budget line and command."""
    import argparse

    from textvae.config import Config

    table = load("ptb_table")
    (tmp_path / "ptb.train.txt").write_text("a b c\n" * 64)
    args = argparse.Namespace(data_dir=str(tmp_path), iw_samples=500, device="cpu", note="Stopped early: budget.")
    figures = {"nll": 100.5, "ppl": 99.1, "kl": 6.0, "mi": 5.5, "au": 32, "latent_size": 32, "neg_elbo": 104.0}
    figures |= {"num_sentences": 3761, "num_tokens": 86191, "seconds": 600.0, "setup": {"cells": "1-layer LSTM"}}
    figures["setup"] |= {"embedding_size": 512, "hidden_size": 1024}
    spent = {"steps": 20, "train_seconds": 1200.0}
    argv = ["--rows", "pretrain", "--reuse", "--note", "Stopped early: budget.", "model.dropout=0.5"]
    record = table.row_record("pretrain", Config(), figures, spent, args, argv)
    keys = {"model", "nll_iw", "iw_samples", "test_sentences", "ppl", "kl", "mi", "au", "neg_elbo", "epochs"}
    assert keys | {"train_minutes", "device", "command", "commit"} <= set(record)
    assert record["epochs"] == 20 * 64 / 64 and record["train_minutes"] == 20.0
    assert record["command"] == "python benchmarks/ptb_table.py --rows pretrain model.dropout=0.5"  # figures only
    assert record["note"] == "Stopped early: budget."
    lm = record | {"row": "lm", "model": "LSTM language model", "latent_size": 0, "iw_samples": None}
    lm |= {"published": {"nll": 101.04, "ppl": 100.47}, "published_source": "He et al. 2019"}
    results = tmp_path / "results"
    results.mkdir()
    for r in (record, lm):
        (results / f"{r['row']}.json").write_text(json.dumps(r))
    rows = table.load_rows(results)
    assert [r["row"] for r in rows] == ["lm", "pretrain"]  # the table's order, not the folder's
    out = tmp_path / "RESULTS.md"
    table.write_markdown(out, rows)
    text = out.read_text()
    assert "| LSTM language model | 100.50 / 101.04 | 99.10 / 100.47 |" in text
    assert "| 32/32 / 32 |" in text and "exact NLL" in text and "K = 500" in text
    assert "short of the full protocol" not in text  # 3,761 sentences and K = 500: the literature's protocol
    assert text.count("Stopped early: budget.") == 2  # each row's note under its budget line
    again = tmp_path / "again.md"  # --table-only: the same table from the records, nothing trained
    assert table.main(["--table-only", "--results-dir", str(results), "--out", str(again)]) == 0
    assert again.read_text() == text and "not here yet" in text
