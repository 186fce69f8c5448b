"""Settings of the edit transfer (``--shift edit``) compared on labelled sentences the benchmark does not use.

``benchmarks/latent_use.py`` judges the first ``--transfer`` sentences of each style file's second half;
this one takes ``--n`` sentences from ``--start`` on in the same half (the same seeded split), so settings
can be chosen on sentences the final figures are not measured on. Each ``--setting`` is ``alpha=A`` plus
any :class:`~textvae.inference.style_edit.EditSettings` fields (``alpha=3,max_edits=4,goal=1.1``); every
setting moves the sentences both ways and is scored as the benchmark scores a row: the share the judge
(trained on the first halves) assigns to the target style, BLEU to the source and, with ``--lm``, the
outputs' per-token NLL over their sources'. Both directions averaged; written to ``--out`` (JSON) after
each setting. The judge trains on the same first halves that give the attribute vectors (and the words the
edit may write), so ``--second-judge`` files (other labelled sentences of the same styles) train a second
one that shares no sentence with them, reported beside it.

Usage (Yelp)::

    python benchmarks/edit_settings.py --model runs/yelp-sentences/best --lm runs/yelp-lm/best \\
        --style negative=../shared/data/yelp-sentiment/sentiment.dev.0 \\
        --style positive=../shared/data/yelp-sentiment/sentiment.dev.1 \\
        --setting alpha=3 --setting alpha=3,max_edits=4 --out edit_settings.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmark's own split of the style files
from latent_use import read_styles  # noqa: E402

from textvae.evaluation.latent_use import lm_nll_per_token, tokenizer_view  # noqa: E402
from textvae.evaluation.style_classifier import StyleClassifier  # noqa: E402
from textvae.evaluation.text_metrics import corpus_bleu  # noqa: E402
from textvae.inference.style import encode_examples  # noqa: E402
from textvae.inference.style_edit import EditSettings, edit_transfer, example_word_shares  # noqa: E402
from textvae.model.vae import TextVAE  # noqa: E402


def parse_setting(spec: str) -> tuple[float, EditSettings]:
    """``alpha=A,field=value,...`` -> ``(alpha, EditSettings)``; unknown fields are an error."""
    fields = {f.name: f.type for f in dataclasses.fields(EditSettings)}
    values: dict[str, float | int] = {}
    alpha = None
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"--setting wants key=value pairs; got {item!r}")
        if key == "alpha":
            alpha = float(value)
        elif key in fields:
            values[key] = int(value) if fields[key] in (int, "int") else float(value)
        else:
            sys.exit(f"unknown --setting key {key!r}; use alpha or one of {', '.join(fields)}")
    if alpha is None:
        sys.exit(f"--setting {spec!r} needs alpha=...")
    return alpha, EditSettings(**values).validate()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--lm", help="a saved language model (the fluency judge)")
    p.add_argument("--edit-lm", help="a language model the edit weighs fluency by (lm_weight; not the judge)")
    p.add_argument("--style", action="append", default=[], metavar="NAME=FILE")
    p.add_argument("--setting", action="append", default=[], required=True)
    p.add_argument("--start", type=int, default=1000, help="first sentence of each second half used")
    p.add_argument("--n", type=int, default=300, help="sentences per style")
    p.add_argument("--examples", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--second-judge", action="append", default=[], metavar="NAME=FILE",
        help="labelled sentences (one file per style, none of the --style files) for a second judge that "
        "shares no sentence with the examples; its verdicts are reported beside the first's",
    )  # fmt: skip
    p.add_argument("--second-judge-n", type=int, default=20000, help="sentences per style it trains on")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    settings = [(s, *parse_setting(s)) for s in args.setting]
    train_half, test_half = read_styles(args.style, args.seed)
    model = TextVAE.from_pretrained(args.model).eval()
    lm = TextVAE.from_pretrained(args.lm).eval() if args.lm else None
    edit_lm = TextVAE.from_pretrained(args.edit_lm).eval() if args.edit_lm else None
    judge = StyleClassifier.fit(train_half, seed=args.seed)
    second = None
    if args.second_judge:
        other, _ = read_styles(args.second_judge, args.seed)  # its first halves: shuffled, seeded
        if set(other) != set(train_half):
            sys.exit(f"--second-judge must name the same styles as --style ({', '.join(sorted(train_half))})")
        second = StyleClassifier.fit({s: t[: args.second_judge_n] for s, t in other.items()}, seed=args.seed)
    examples = {s: t[: args.examples] for s, t in train_half.items()}
    codes, shares = encode_examples(model, examples), example_word_shares(model, examples)
    held = {}
    for s, t in test_half.items():
        t = t[args.start : args.start + args.n]
        held[s] = [x for x, ok in zip(t, model.usable(t)) if ok]
    results = {"command": shlex.join(["python", *sys.argv]), "settings": []}
    if second is not None:  # how well the second judge knows real sentences of each style
        results["second_judge_on_real"] = {s: second.share(t, s) for s, t in held.items()}
    for spec, alpha, cfg in settings:
        start, rows = time.time(), []
        for src, texts in held.items():
            ids, refs = model.token_ids(texts), tokenizer_view(model, texts)
            for tgt in held:
                if tgt == src:
                    continue
                with torch.no_grad():
                    hyps = model.decode_ids(
                        edit_transfer(model, ids, codes[src], codes[tgt], alpha, cfg, word_shares=shares, lm=edit_lm)
                    )
                row = {"source": src, "target": tgt, "target_share": judge.share(hyps, tgt),
                       "bleu": corpus_bleu(refs, hyps), "n": len(hyps)}  # fmt: skip
                if second is not None:
                    row["second_judge_share"] = second.share(hyps, tgt)
                if lm is not None:
                    row["fluency_ratio"] = lm_nll_per_token(lm, hyps) / lm_nll_per_token(lm, refs)
                rows.append(row)
        mean = {
            k: sum(r[k] for r in rows) / len(rows)
            for k in ("target_share", "second_judge_share", "bleu", "fluency_ratio")
            if k in rows[0]
        }
        resolved = {"alpha": alpha, **dataclasses.asdict(cfg), "edit_lm": args.edit_lm}  # whatever the defaults become
        results["settings"].append(
            {"setting": spec, "resolved": resolved, **mean, "rows": rows, "seconds": round(time.time() - start, 1)}
        )
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        flu = f" / {mean['fluency_ratio']:.3f}" if "fluency_ratio" in mean else ""
        two = f" (second judge {100 * mean['second_judge_share']:.1f}%)" if second is not None else ""
        print(f"{spec}: {100 * mean['target_share']:.1f}% / {mean['bleu']:.1f}{flu}{two}", flush=True)


if __name__ == "__main__":
    main()
