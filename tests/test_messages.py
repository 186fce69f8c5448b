"""Validation holes a new user hits: each bad input gets one line naming what they typed, and exit 2."""

from pathlib import Path

import numpy as np
import pytest
import torch

from textvae.cli import main
from textvae.config import Config
from textvae.training.trainer import Trainer

SETTINGS = {
    "data": {"train": "synthetic", "synthetic_size": 200, "valid_fraction": 0.1},
    "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4},
    "train": {"max_steps": 5, "batch_size": 16, "eval_every": 5, "progress": False},
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("m") / "run"
    Trainer(Config.from_dict(SETTINGS).apply_overrides([f"train.output_dir={run}"]), log=lambda s: None).fit()
    return run / "best"


@pytest.fixture
def config_file(tmp_path) -> Path:
    p = tmp_path / "cfg.yaml"
    Config.from_dict(SETTINGS).to_yaml(p)
    return p


def error(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a torch without CUDA")
def test_cuda_on_a_torch_without_cuda(model_dir, config_file, tmp_path, capsys):
    err = error(["train", str(config_file), "train.device=cuda", f"train.output_dir={tmp_path / 'r'}"], capsys)
    assert "train.device=cuda: this torch" in err and "has no CUDA" in err
    assert not (tmp_path / "r").exists()
    err = error(["sample", str(model_dir), "--device", "cuda"], capsys)
    assert "--device=cuda" in err and "damaged" not in err


def test_a_zero_width_latent_is_refused(config_file, tmp_path, capsys):
    err = error(["train", str(config_file), "model.latent_size=0", f"train.output_dir={tmp_path / 'r'}"], capsys)
    assert "model.latent_size must be at least 1" in err


def test_encode_never_overwrites_without_force(model_dir, tmp_path, capsys):
    out = tmp_path / "codes.npy"
    out.write_bytes(b"precious")
    err = error(["encode", str(model_dir), "the cat sleeps .", "--output", str(out)], capsys)
    assert "already exists; pass --force" in err and out.read_bytes() == b"precious"
    assert main(["encode", str(model_dir), "the cat sleeps .", "a dog runs .", "--npy", str(out), "--force"]) == 0
    assert np.load(out).shape == (2, 2, 4)
    assert not list(tmp_path.glob(".*tmp*"))


def test_evaluate_names_the_data_flag(model_dir, tmp_path, capsys):
    err = error(["evaluate", str(model_dir), "--data", str(tmp_path / "missing.txt")], capsys)
    assert "check --data" in err and "data.train" not in err


def test_the_cleaning_report_is_printed_and_saved(tmp_path, capsys):
    """A corpus of 310 lines became "283 sentences" with no reason given."""
    import json

    lines = [f"sentence number {i} ." for i in range(300)] + [""] * 4 + ["long " * 60] * 2 + ["sentence number 7 ."] * 4
    corpus = tmp_path / "mine.txt"
    corpus.write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "cfg.yaml"
    Config.from_dict(SETTINGS).to_yaml(cfg)
    run = tmp_path / "run"
    assert main(["train", str(cfg), f"data.train={corpus}", "data.dedup=true", f"train.output_dir={run}"]) == 0
    out = capsys.readouterr().out
    assert "310 rows read -> 300 sentences (4 blank, 2 longer than data.max_length=50 words, 4 duplicates)" in out
    saved = json.loads((run / "cleaning.json").read_text())
    assert saved["read"] == 310 and saved["blank"] == 4 and saved["duplicates"] == 4
    assert saved["train"] + saved["valid"] == 300


@pytest.fixture
def labelled(tmp_path) -> Path:
    """A JSONL file whose columns are not called text / label."""
    import json

    from textvae.data.synthetic import generate

    path = tmp_path / "reviews.jsonl"
    rows = [{"review": s.text, "mood": s.factors["sentiment"]} for s in generate(60, seed=3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mix_names_its_own_flags(model_dir, labelled, capsys):
    base = ["mix", str(model_dir), "the cat sleeps .", "--data", str(labelled), "--target-style", "positive"]
    err = error([*base, "--label-column", "mood"], capsys)
    assert "has no column 'text'" in err and "set --text-column" in err and "data.text_column" not in err
    err = error([*base, "--label-column", "nope", "--text-column", "review"], capsys)
    assert "set --label-column" in err and "data.label_column" not in err


def test_mix_dims_reports_weak_dimensions_and_lists_them_in_json(model_dir, labelled, capsys):
    import json

    args = ["mix", str(model_dir), "the cat sleeps .", "--data", str(labelled), "--label-column", "mood"]
    args += ["--text-column", "review", "--target-style", "positive", "--method", "dims", "--json"]
    assert main([*args, "--dim-threshold", "1.01"]) == 0  # no dimension can pass: the best one is taken
    out, err = capsys.readouterr()
    record = json.loads(out.splitlines()[0])
    assert len(record["dims"]) == 1 == len(record["dim_scores"])
    assert "warning" in err and "below --dim-threshold 1.01" in err


def test_analyze_names_the_label_column_flag(model_dir, labelled, tmp_path, capsys):
    pytest.importorskip("sklearn")
    err = error(
        ["analyze", str(model_dir), "--data", str(labelled), "--label-column", "nope", "--text-column", "review"],
        capsys,
    )
    assert "--label-column" in err and "data.label_column" not in err


def test_evaluate_reads_another_text_column(model_dir, labelled, capsys):
    err = error(["evaluate", str(model_dir), "--data", str(labelled)], capsys)
    assert "set --text-column" in err
    assert main(["evaluate", str(model_dir), "--data", str(labelled), "--text-column", "review", "--samples", "2"]) == 0


def test_plot_takes_json_like_every_command(model_dir, tmp_path, capsys):
    import json

    pytest.importorskip("matplotlib")
    assert main(["plot", str(model_dir.parent), "--out", str(tmp_path), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["figures"]
    assert figures and all(Path(f).is_file() for f in figures)


def test_the_text_column_defaults_to_the_models_own(labelled, tmp_path, capsys):
    """A model trained on a "review" column reads "review" from --data without being told."""
    run = tmp_path / "run"
    cfg = Config.from_dict(SETTINGS).apply_overrides(
        [f"data.train={labelled}", "data.text_column=review", "data.valid_fraction=0.2", f"train.output_dir={run}"]
    )
    Trainer(cfg, log=lambda s: None).fit()
    model = str(run / "best")
    assert main(["evaluate", model, "--data", str(labelled), "--samples", "2"]) == 0
    mix = ["mix", model, "the cat sleeps .", "--data", str(labelled), "--label-column", "mood"]
    assert main([*mix, "--target-style", "positive"]) == 0


def test_library_errors_name_parameters_and_the_cli_names_its_flags(model_dir, tmp_path, capsys):
    """One check, two spellings: the library's message names the Python parameter, the CLI's its flag."""
    from textvae.errors import ParameterError
    from textvae.inference.latent_tools import save_codes, traverse
    from textvae.inference.sampling import sample_near
    from textvae.model.vae import TextVAE

    model = TextVAE.from_pretrained(model_dir)
    cases = [
        (
            lambda: model.sample(0),
            "n must be at least 1",
            ["sample", str(model_dir), "-n", "0"],
            "-n must be at least 1",
        ),
        (
            lambda: sample_near(model, "the cat sleeps .", 2, radius=-1.0),
            "radius must be >= 0",
            ["sample", str(model_dir), "--near", "the cat sleeps .", "--radius", "-1"],
            "--radius must be >= 0",
        ),
        (
            lambda: traverse(model, 99),
            "dim must be in [0, 3]",
            ["traverse", str(model_dir), "--dim", "99"],
            "--dim must be in [0, 3]",
        ),
        (
            lambda: model.encode_text([""]),
            "a sentence is empty",
            ["encode", str(model_dir), "   "],
            "empty",
        ),
    ]
    for call, library, argv, cli in cases:
        with pytest.raises(ParameterError) as info:
            call()
        assert library in str(info.value) and "--" not in str(info.value).split(",")[0]
        assert cli in error(argv, capsys)
    existing = tmp_path / "codes.npy"
    existing.write_bytes(b"old")
    post = model.encode_text(["the cat sleeps ."])
    with pytest.raises(ParameterError, match="pass overwrite=True to replace it, or choose another path"):
        save_codes(post, existing)
    assert existing.read_bytes() == b"old"
