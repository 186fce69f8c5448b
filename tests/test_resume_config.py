"""A resume reads the run's own config (its absolute paths) and refuses a changed data or model section."""

from pathlib import Path

import pytest

from textvae.cli import main
from textvae.config import Config
from textvae.data.synthetic import generate
from textvae.training.runconfig import differences, with_absolute_paths

TINY = ["train.max_steps=10", "train.eval_every=5", "train.batch_size=16", "train.progress=false"]
MODEL = {"embedding_size": 16, "hidden_size": 24, "latent_size": 4}


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A user's project folder: a corpus and a config with paths relative to it; the cwd."""
    root = tmp_path / "project"
    root.mkdir()
    lines = [s.text for s in generate(400, seed=0)]
    (root / "train.txt").write_text("\n".join(lines[:300]) + "\n")
    (root / "valid.txt").write_text("\n".join(lines[300:]) + "\n")
    (root / "other.txt").write_text("\n".join(lines[100:]) + "\n")
    Config.from_dict({"data": {"train": "train.txt", "valid": "valid.txt"}, "model": MODEL}).to_yaml(root / "cfg.yaml")
    monkeypatch.chdir(root)
    return root


def started_run(project: Path, capsys) -> Path:
    run = project / "runs" / "r"
    assert main(["train", "cfg.yaml", f"train.output_dir={run}", *TINY]) == 0
    capsys.readouterr()
    return run


def test_the_run_config_records_absolute_paths(project, capsys):
    run = started_run(project, capsys)
    saved = Config.from_yaml(run / "config.yaml")
    assert saved.data.train == str(project / "train.txt") and saved.data.valid == str(project / "valid.txt")


def test_resume_from_another_directory_reads_the_runs_paths(project, capsys, monkeypatch, tmp_path):
    """Resuming with the same relative-path config from elsewhere failed with "file not found: train.txt"."""
    run = started_run(project, capsys)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", str(project / "cfg.yaml"), f"train.resume={run}", "train.max_steps=15"]) == 0, (
        capsys.readouterr()
    )
    assert main(["train", f"train.resume={run}", "train.max_steps=20"]) == 0, capsys.readouterr()
    assert "done: step 20" in capsys.readouterr().out


def test_resume_with_changed_data_is_refused_and_best_is_untouched(project, capsys):
    run = started_run(project, capsys)
    before = {p: p.read_bytes() for p in (run / "best").rglob("*") if p.is_file()}
    code = main(["train", "cfg.yaml", f"train.resume={run}", "data.train=other.txt", "model.latent_size=8"])
    err = capsys.readouterr().err
    assert code == 2
    assert "data.train (run: " in err and "now: 'other.txt')" in err and "model.latent_size (run: 4, now: 8)" in err
    assert before == {p: p.read_bytes() for p in (run / "best").rglob("*") if p.is_file()}


def test_resume_without_a_config_needs_train_resume(project, capsys):
    assert main(["train", "train.max_steps=5"]) == 2
    assert "not a config file" in capsys.readouterr().err


def test_differences_treat_a_relative_path_and_its_absolute_form_as_one(project):
    typed = Config.from_yaml(project / "cfg.yaml")
    assert differences(with_absolute_paths(typed), typed) == []
    moved = Config.from_yaml(project / "cfg.yaml").apply_overrides(["data.train=other.txt"])
    assert [d.split(" ")[0] for d in differences(with_absolute_paths(typed), moved)] == ["data.train"]
