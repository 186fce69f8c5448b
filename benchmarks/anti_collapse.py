"""Does the latent space stay alive? The same config trained with and without the anti-collapse settings.

"Without" turns off word dropout and free bits, conditions the decoder on z through its initial state
only, and uses a constant beta = 1 (no annealing): the plain VAE of Bowman et al. 2016 minus its fixes.
Reports the final validation negative ELBO, reconstruction, KL and active units of each run, and the
median training throughput in real (non-padding) target tokens per second.

    python benchmarks/anti_collapse.py configs/demo.yaml --out benchmarks/results/demo
    python benchmarks/anti_collapse.py configs/ptb-lstm.yaml train.max_steps=600 --out benchmarks/results/ptb
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from textvae.config import Config
from textvae.training.trainer import Trainer

WITHOUT = [
    "model.word_dropout=0",
    "model.free_bits=0",
    "model.z_conditioning=init",
    "train.beta_schedule=constant",
]


def run(config: str, overrides: list[str], out: Path) -> dict:
    cfg = Config.from_yaml(config).apply_overrides([*overrides, f"train.output_dir={out}", "train.progress=false"])
    t0 = time.perf_counter()
    result = Trainer(cfg, log=lambda s: print("   ", s, flush=True)).fit()
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_sec"] for r in records if r["split"] == "train"]
    return {
        "neg_elbo": result["neg_elbo"],
        "rec": result["rec"],
        "kl": result["kl"],
        "au": result["au"],
        "latent_size": cfg.model.latent_size,
        "steps": result["step"],
        "tokens_per_sec_median": statistics.median(speeds) if speeds else None,
        "wall_seconds": time.perf_counter() - t0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="applied to both runs")
    p.add_argument("--out", required=True, help="folder for the two runs and results.json")
    args = p.parse_args()
    out = Path(args.out)
    results = {}
    for name, extra in (("with", []), ("without", WITHOUT)):
        print(f"== {name} anti-collapse settings", flush=True)
        results[name] = run(args.config, [*args.overrides, *extra], out / name)
    (out / "results.json").write_text(json.dumps({"config": args.config, "overrides": args.overrides, **results}))
    print(f"\n{'':10} {'-ELBO':>8} {'rec':>8} {'KL':>7} {'AU':>6} {'tok/s':>8} {'steps':>6}")
    for name, r in results.items():
        print(
            f"{name:10} {r['neg_elbo']:8.2f} {r['rec']:8.2f} {r['kl']:7.2f} {r['au']:3d}/{r['latent_size']:<2d} "
            f"{r['tokens_per_sec_median'] or 0:8.0f} {r['steps']:6d}"
        )


if __name__ == "__main__":
    main()
