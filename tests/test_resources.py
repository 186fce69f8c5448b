"""Resource bounds: a corpus of millions of lines trains in memory that does not grow with the corpus.

A real ``Trainer`` runs in a subprocess (its own heap, its own ``datasets`` cache) while a thread samples
the process's anonymous resident memory (``RssAnon``: the heap, not the memory-mapped Arrow files, whose
pages the kernel can drop at any time). The run on a 3-million-line file is compared with the same run on
a 30,000-line file: holding the token ids in Python lists would cost about 1 GB more; streaming costs the
per-sentence lengths and batch order (numpy, ~8 bytes a sentence each) plus fixed-size buffers.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

PROBE = r"""
import json, sys, threading, time

def rss_anon_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024

peak = [0.0]
def sample():
    while True:
        peak[0] = max(peak[0], rss_anon_mb())
        time.sleep(0.005)

from textvae.config import Config
from textvae.training.trainer import Trainer

baseline = rss_anon_mb()  # after the imports (torch, datasets): the same for both corpora
threading.Thread(target=sample, daemon=True).start()
cfg = Config.from_dict({
    "data": {"train": sys.argv[1], "valid_fraction": 0.0005, "vocab_size": 2000},
    "model": {"embedding_size": 8, "hidden_size": 8, "latent_size": 2},
    "train": {"max_steps": 3, "batch_size": 32, "eval_every": 3, "eval_max_sentences": 64,
              "progress": False, "output_dir": sys.argv[2]},
})
Trainer(cfg, log=lambda s: None).fit()
time.sleep(0.05)
print(json.dumps({"baseline_mb": baseline, "peak_mb": peak[0]}))
"""


def write_lines(path: Path, n: int, seed: int = 0) -> None:
    """``n`` lines of 3-8 words over a 3,000-word vocabulary: 100,000 distinct lines, cycled."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(3000)])
    block = [" ".join(words[rng.integers(0, 3000, rng.integers(3, 9))]) for _ in range(min(n, 100_000))]
    text = "\n".join(block) + "\n"
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n // len(block)):
            f.write(text)
        f.write("\n".join(block[: n % len(block)]))


def peak_growth_mb(corpus: Path, tmp_path: Path) -> float:
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(corpus), str(tmp_path / f"run-{corpus.stem}")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return figures["peak_mb"] - figures["baseline_mb"]


def test_memory_stays_bounded_on_a_corpus_of_millions_of_lines(tmp_path):
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    write_lines(small, 30_000)
    write_lines(big, 3_000_000)
    assert big.stat().st_size > 80e6
    growth_small = peak_growth_mb(small, tmp_path)
    growth_big = peak_growth_mb(big, tmp_path)
    # 100x the sentences; streaming adds ~60-100 MB here (lengths, batch order, Arrow buffers).
    print(f"peak anonymous memory growth: {growth_small:.0f} MB (30k lines), {growth_big:.0f} MB (3M lines)")
    assert growth_big - growth_small < 250, (growth_small, growth_big)
