"""The speed benchmark runs end to end on a tiny model and its FLOP count is right (no timing asserted)."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from textvae.config import ModelConfig

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
    assert perf.training_flops(ModelConfig(encoder="transformer"), words) is None


def test_performance_benchmark_runs_and_writes_json(tmp_path):
    perf = load("performance")
    out = tmp_path / "perf.json"
    argv = [
        "--config", "configs/demo.yaml", "data.synthetic_size=400", "model.hidden_size=32",
        "model.embedding_size=16", "--steps", "2", "--warmup", "1", "--repeats", "1", "--num", "8",
        "--single", "2", "--max-length", "10", "--iw-samples", "4", "--iw-sentences", "2",
        "--work-dir", str(tmp_path / "work"), "--json", str(out),
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
    assert set(result["generate"]) >= {"greedy_batched", "greedy_batch1", "nucleus_batched", "nucleus_batch1"}
    assert result["iwnll"]["batched_sentences_per_sec"] > 0
