"""A rate-distortion curve: one model per beta, each a point (rate = KL, distortion = reconstruction).

A VAE is a lossy code for sentences (Alemi et al. 2018, "Fixing a broken ELBO"): the KL is the rate (bits
per sentence spent on z), the reconstruction the distortion (bits still needed for x given z), and their sum
is the negative ELBO. Training with ``beta != 1`` picks another point of the trade-off. This trains the given
config once per ``--betas`` value (``train.beta_max``; free bits off unless overridden, since they put a floor
under the rate) and a language model as the reference (``model.use_latent=false``: its NLL is the line
``R + D = H`` that a perfect latent code would reach), evaluates each on the test sentences with
:func:`textvae.evaluation.likelihood.evaluate_corpus`, and writes

* ``OUT/<point>.json`` per point (as soon as it is done; a finished point is not redone, and a cut training
  run resumes, so the sweep can be split over sessions), ``OUT/rate_distortion.md`` (the table) and
  ``OUT/rate_distortion.png`` (the curve). ``train_seconds`` counts this invocation's training only.

Usage::

    python benchmarks/rate_distortion.py configs/ptb-lstm.yaml --test ../shared/data/ptb/ptb.test.txt \\
        data.train=../shared/data/ptb/ptb.train.txt data.valid=../shared/data/ptb/ptb.valid.txt --out DIR
    python benchmarks/rate_distortion.py configs/demo.yaml --test synthetic --max-steps 300 --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

from textvae.config import Config
from textvae.data import synthetic
from textvae.data.eval_data import load_eval_data
from textvae.evaluation.likelihood import evaluate_corpus
from textvae.evaluation.plots import plot_rate_distortion
from textvae.model.vae import TextVAE
from textvae.training.runconfig import with_budget
from textvae.training.runs import train_to_completion

KEEP = ("nll_iw", "neg_elbo", "rec", "kl", "mi", "au", "ppl", "bits_per_word", "rate_bits", "distortion_bits")


def point_config(args: argparse.Namespace, beta: float | None) -> Config:
    """The config of one point (``beta=None``: the language model)."""
    cfg = Config.from_yaml(args.config)
    extra = (
        ["model.use_latent=false", "model.free_bits=0"]
        if beta is None
        else ["model.free_bits=0", f"train.beta_max={beta}"]
    )
    with_budget(cfg.apply_overrides(extra), args.max_steps).apply_overrides(args.overrides)
    cfg.train.output_dir = str(Path(args.runs_dir) / point_name(beta))
    cfg.train.progress = False
    return cfg


def point_name(beta: float | None) -> str:
    return "lm" if beta is None else f"beta-{beta:g}"


def test_file(args: argparse.Namespace) -> str:
    """The test sentences: a file, or ``synthetic``: held-out sentences of the embedded corpus (another seed)."""
    if args.test != "synthetic":
        return args.test
    path = Path(args.runs_dir) / "synthetic-test.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(s.text + "\n" for s in synthetic.generate(args.max_test_sentences or 1000, seed=4242)))
    return str(path)


def run_point(args: argparse.Namespace, beta: float | None, test: str) -> dict:
    cfg = point_config(args, beta)
    run = Path(cfg.train.output_dir)
    t0 = time.perf_counter()
    train_to_completion(cfg, log=lambda s: print("   ", s, flush=True))  # a finished run is kept as it is
    seconds = time.perf_counter() - t0
    model = TextVAE.from_pretrained(run)
    data = load_eval_data(model, test, max_sentences=args.max_test_sentences)
    report = evaluate_corpus(model, data.token_ids, iw_samples=args.iw_samples, seed=0, progress=False)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    return {
        "point": point_name(beta),
        "beta": beta,
        **{k: report[k] for k in KEEP},
        "num_sentences": report["num_sentences"],
        "iw_samples": report["iw_samples"],
        "steps": last.get("step"),
        "train_seconds": seconds,
    }


def table(points: list[dict], lm: dict | None, args: argparse.Namespace, argv: list[str]) -> str:
    lines = [
        "# Rate-distortion",
        "",
        "Made by:",
        "",
        "```",
        shlex.join(["python", "benchmarks/rate_distortion.py", *argv]),
        "```",
        "",
        f"Test sentences: {points[0]['num_sentences']}; bits per sentence; NLL is the IW bound with "
        f"K = {args.iw_samples}; bits per word = log2 perplexity (end tokens counted). Training: "
        f"{points[0]['steps']} optimizer steps per model (the config's budget unless `--max-steps`).",
        "",
        "| model | rate R (KL) | distortion D (rec) | R + D (−ELBO) | NLL (IW) | bits/word | MI (nats) | AU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ln2 = math.log(2)
    for p in sorted(points, key=lambda p: p["beta"]):
        lines.append(
            f"| β = {p['beta']:g} | {p['rate_bits']:.2f} | {p['distortion_bits']:.2f} | "
            f"{p['rate_bits'] + p['distortion_bits']:.2f} | {p['nll_iw'] / ln2:.2f} | {p['bits_per_word']:.3f} | "
            f"{p['mi']:.2f} | {p['au']} |"
        )
    if lm is not None:
        lines.append(
            f"| language model | 0 | {lm['distortion_bits']:.2f} | {lm['distortion_bits']:.2f} | "
            f"{lm['nll_iw'] / ln2:.2f} (exact) | {lm['bits_per_word']:.3f} | – | – |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="the base config (YAML)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, applied to every point")
    p.add_argument("--test", required=True, help="test sentences (a file), or 'synthetic'")
    p.add_argument("--betas", nargs="+", type=float, default=[0.1, 0.25, 0.5, 1.0, 2.0])
    p.add_argument("--no-lm", action="store_true", help="skip the language-model reference")
    p.add_argument("--max-steps", type=int, default=None, help="training budget per model (warm-up scaled)")
    p.add_argument("--iw-samples", type=int, default=100)
    p.add_argument("--max-test-sentences", type=int, default=None)
    p.add_argument("--runs-dir", default="runs/rate-distortion", help="where the models are trained")
    p.add_argument("--out", required=True, help="folder for the per-point JSON, the table and the PNG")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    test = test_file(args)
    results: dict[str, dict] = {}
    for beta in [*args.betas, *([] if args.no_lm else [None])]:
        part = out / f"{point_name(beta)}.json"
        if not part.is_file():
            print(f"== {point_name(beta)}", flush=True)
            part.write_text(json.dumps(run_point(args, beta, test), indent=2), encoding="utf-8")
        results[point_name(beta)] = json.loads(part.read_text(encoding="utf-8"))
        print(f"   {json.dumps(results[point_name(beta)])}", flush=True)
    lm = results.pop("lm", None)
    points = list(results.values())
    (out / "rate_distortion.md").write_text(table(points, lm, args, argv), encoding="utf-8")
    plot_rate_distortion(
        [{"label": f"β={p['beta']:g}", **p} for p in points],
        out / "rate_distortion.png",
        reference_bits=None if lm is None else lm["nll_iw"] / math.log(2),
        title=f"rate-distortion: {Path(args.config).stem}",
    )
    print((out / "rate_distortion.md").read_text())


if __name__ == "__main__":
    main()
