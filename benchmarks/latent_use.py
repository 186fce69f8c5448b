"""What a user does with a trained VAE, measured on their own labelled sentences: reconstruct, transfer
a style, interpolate (:mod:`textvae.evaluation.latent_use`).

Give it a trained model, a language model trained on the same corpus (``model.use_latent=false``: the
fluency judge) and one file per style of labelled sentences the VAE did not train on. Each style file is
split in two by a seeded shuffle: the first half trains the style classifier (the independent judge) and
gives the attribute vectors; the second half gives the sentences that are reconstructed, transferred and
interpolated. It writes

* ``OUT/latent_use.json``: every figure (``reconstruction``; ``transfer``: per ``--shift`` mode its rows,
  per-alpha ``summary`` and ``picked_alpha``, and the classifier's verdicts on real sentences; ``fluency``;
  with ``--lm`` each transfer row's ``fluency_ratio`` too) and the command;
* ``OUT/latent_use.md``: a trade-off table per mode; ``OUT/transfer_tradeoff.png``: the first mode's plot,
  ``transfer_tradeoff_<mode>.png`` the others'.

Usage (Yelp; the VAE trained on sentiment.test.*, so the dev files are held out)::

    python benchmarks/latent_use.py --model runs/yelp/best --lm runs/yelp-lm/best \\
        --style negative=../shared/data/yelp-sentiment/sentiment.dev.0 \\
        --style positive=../shared/data/yelp-sentiment/sentiment.dev.1 --out DIR
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import time
from pathlib import Path

import torch

from textvae.evaluation.latent_use import (
    interpolation_fluency,
    pick_alpha,
    reconstruction_figures,
    summarize_tradeoff,
    tokenizer_view,
    transfer_tradeoff,
)
from textvae.evaluation.plots import plot_transfer_tradeoff
from textvae.evaluation.style_classifier import StyleClassifier
from textvae.inference.style import SHIFT_MODES
from textvae.model.vae import TextVAE


def read_styles(specs: list[str], seed: int) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``NAME=FILE`` per style -> ``(first halves, second halves)`` of each file's shuffled non-empty lines."""
    first, second = {}, {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not Path(path).is_file():
            sys.exit(f"--style wants NAME=FILE with an existing file; got {spec!r}")
        lines = [t.strip() for t in Path(path).read_text(encoding="utf-8").splitlines() if t.strip()]
        random.Random(seed).shuffle(lines)
        first[name], second[name] = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    if len(first) < 2:
        sys.exit("give at least two --style files")
    return first, second


def table(summary: list[dict], picked: float) -> str:
    fluency = all("fluency_ratio" in r for r in summary)
    head = "| alpha | judged the target style | BLEU to the source | GM |" + (" LM NLL vs sources |" if fluency else "")
    rows = [head, "|---:|---:|---:|---:|" + ("---:|" if fluency else "")]
    for r in summary:
        mark = " (picked)" if r["alpha"] == picked else ""
        line = f"| {r['alpha']:g}{mark} | {100 * r['target_share']:.1f}% | {r['bleu']:.1f} | {r['gm']:.1f} |"
        rows.append(line + (f" {r['fluency_ratio']:.3f} |" if fluency else ""))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a saved VAE directory (e.g. RUN/best)")
    p.add_argument("--lm", help="a saved language model directory (the fluency judge); no fluency figures without")
    p.add_argument("--style", action="append", default=[], metavar="NAME=FILE", help="labelled sentences (repeat)")
    p.add_argument("--edit-lm", help="a language model the edit shift weighs fluency by (not the judge --lm)")
    p.add_argument("--out", required=True)
    p.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    p.add_argument("--examples", type=int, default=2000, help="sentences per style for the attribute vectors")
    p.add_argument("--transfer", type=int, default=300, help="sentences moved per source style")
    p.add_argument("--reconstruct", type=int, default=1000, help="sentences reconstructed (across styles)")
    p.add_argument("--pairs", type=int, default=100, help="interpolation paths")
    p.add_argument("--steps", type=int, default=7, help="points per path, both ends included")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--shift",
        nargs="+",
        choices=SHIFT_MODES,
        default=["edit", "search", "calibrated", "uniform", "local"],
        help="how far each sentence moves along the attribute vector (each mode measured)",
    )
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    train_half, test_half = read_styles(args.style, args.seed)
    model = TextVAE.from_pretrained(args.model).eval()
    start = time.time()

    judge = StyleClassifier.fit(train_half, seed=args.seed)
    held = {s: t[: args.transfer] for s, t in test_half.items()}
    # The judge's verdict on real sentences of each style (as the VAE's tokenizer writes them, like the
    # outputs): the share a perfect transfer could reach, and where untouched sources stand.
    real = {s: judge.share(tokenizer_view(model, t), s) for s, t in held.items()}
    untouched = {s: 1 - v for s, v in real.items()} if len(real) == 2 else None
    examples = {s: t[: args.examples] for s, t in train_half.items()}
    lm = TextVAE.from_pretrained(args.lm).eval() if args.lm else None
    edit_lm = TextVAE.from_pretrained(args.edit_lm).eval() if args.edit_lm else None
    transfer = {}
    for mode in args.shift:  # each shift mode over the same sentences, alphas and judge
        rows = transfer_tradeoff(model, examples, held, judge, args.alphas, shift_mode=mode, lm=lm, edit_lm=edit_lm)
        summary = summarize_tradeoff(rows)
        transfer[mode] = {"rows": rows, "summary": summary, "picked_alpha": pick_alpha(summary)}

    mixed = [t for pair in zip(*test_half.values()) for t in pair]  # styles interleaved
    figures = {
        "command": shlex.join(["python", *sys.argv]),
        "model": args.model,
        "reconstruction": reconstruction_figures(model, mixed[: args.reconstruct]),
        "transfer": {**transfer, "real_target_share": sum(real.values()) / len(real), "real_share": real,
                     "untouched_target_share": None if untouched is None else sum(untouched.values()) / 2},
    }  # fmt: skip
    if lm is not None:
        figures["fluency"] = interpolation_fluency(model, lm, mixed, pairs=args.pairs, steps=args.steps, seed=args.seed)
    figures["seconds"] = round(time.time() - start, 1)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latent_use.json").write_text(json.dumps(figures, indent=2) + "\n")
    refs = {"real sentences of the target style": figures["transfer"]["real_target_share"]}
    if untouched is not None:
        refs["untouched sources"] = figures["transfer"]["untouched_target_share"]
    rec, flu = figures["reconstruction"], figures.get("fluency")
    lines = [
        f"reconstruction (greedy, posterior mean, {rec['n']} sentences): BLEU {rec['rec_bleu']:.1f}, "
        f"exact {100 * rec['exact_match']:.1f}%",
        f"judge on real sentences of each style: {100 * figures['transfer']['real_target_share']:.1f}%",
    ]
    for mode, t in transfer.items():
        suffix = "" if mode == args.shift[0] else f"_{mode}"
        plot_transfer_tradeoff(t["summary"], out / f"transfer_tradeoff{suffix}.png", refs)
        lines += ["", f"{mode} shift:", "", table(t["summary"], t["picked_alpha"])]
    if flu:
        lines += ["", f"interpolation ({flu['pairs']} paths, {flu['steps']} points): LM NLL/token of path points "
                  f"{flu['path_nll']:.3f} vs real {flu['real_nll']:.3f} (ratio {flu['fluency_ratio']:.3f}); "
                  f"{100 * flu['moving_share']:.0f}% of inner points differ from both ends"]  # fmt: skip
    (out / "latent_use.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
