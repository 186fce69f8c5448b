"""``textvae push``: upload a model directory to the Hugging Face Hub with a generated model card."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push",
        help="upload a model to the Hugging Face Hub, with a generated model card",
        description="Upload a saved model directory (or a run directory: its best/ checkpoint) to the Hub "
        "repository REPO_ID (created if needed), with a README.md model card: training data, config, the "
        "run's last validation figures and how to load it. Log in first (`hf auth login` or HF_TOKEN).",
    )
    p.add_argument("model", metavar="MODEL_DIR", help="a model directory or a run directory")
    p.add_argument("repo_id", metavar="REPO_ID", help="the Hub repository, user/name")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--revision", default=None, help="branch to push to (default main)")
    p.add_argument("--message", default="Upload textvae model", help="commit message")
    p.add_argument("--card-only", action="store_true", help="print the model card and upload nothing")
    p.set_defaults(func=run_push)


def run_push(args: argparse.Namespace) -> int:
    from textvae.hub import push_model_dir
    from textvae.model.persistence import read_config, resolve_model_dir
    from textvae.model_card import build_model_card, find_run_metrics

    if args.card_only:
        d = resolve_model_dir(args.model)
        print(build_model_card(read_config(d), repo_id=args.repo_id, metrics=find_run_metrics(d)))
        return 0
    url = push_model_dir(
        args.model, args.repo_id, private=args.private or None, revision=args.revision, commit_message=args.message
    )
    print(f"pushed to https://huggingface.co/{args.repo_id} ({url})")
    return 0
