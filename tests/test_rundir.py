"""A run directory is owned by one run, never left unusable, and tells the truth about how its run ended:
concurrent runs, a first checkpoint that fails, a full disk, a diverged run, signals at any moment, an
incomplete model directory. Each test fails when the protection it names is removed."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from textvae.cli import main
from textvae.config import Config
from textvae.errors import DiskFullError, ModelDirError, TextVAEError
from textvae.model.vae import TextVAE
from textvae.training import checkpoint as checkpoint_module
from textvae.training import records as records_module
from textvae.training import trainer as trainer_module
from textvae.training.checkpoint import find_checkpoint
from textvae.training.rundir import LOCK_NAME, RunLock
from textvae.training.trainer import Trainer

SETTINGS = {
    "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
    "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4, "word_dropout": 0.2, "dropout": 0.1},
    "train": {"max_steps": 30, "batch_size": 16, "eval_every": 10, "checkpoint_every": 5, "progress": False},
}


def config(*overrides: str) -> Config:
    return Config.from_dict(SETTINGS).apply_overrides(list(overrides))


def write_config(tmp_path: Path, **train) -> Path:
    p = tmp_path / "cfg.yaml"
    cfg = Config.from_dict(SETTINGS)
    for k, v in train.items():
        setattr(cfg.train, k, v)
    cfg.to_yaml(p)
    return p


def strict_json_lines(path: Path) -> list[dict]:
    """Every line parsed as strict JSON: ``NaN`` / ``Infinity`` literals are refused."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def cli(args: list[str], timeout: float = 180, **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "textvae", *args], capture_output=True, text=True, timeout=timeout, env=env, **popen
    )


# -- one run per directory ----------------------------------------------------------------------------------


def test_a_held_run_directory_is_refused_naming_its_holder(tmp_path):
    run = tmp_path / "run"
    held = rf"in use by another textvae run \(process {os.getpid()} on "
    with RunLock(run), pytest.raises(TextVAEError, match=held):
        Trainer(config(f"train.output_dir={run}"), log=lambda s: None)
    Trainer(config(f"train.output_dir={run}", "train.max_steps=5"), log=lambda s: None).fit()  # released


def test_resume_takes_the_lock_too(tmp_path):
    run = tmp_path / "run"
    Trainer(config(f"train.output_dir={run}"), log=lambda s: None).fit(stop_at=5)
    with RunLock(run), pytest.raises(TextVAEError, match="in use by another textvae run.*train.resume"):
        Trainer(config(f"train.resume={run}"), log=lambda s: None)


def test_a_stale_lock_of_a_killed_run_is_reported_and_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # What a run killed with SIGKILL leaves: its name in the file, no OS lock held.
    (run / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "elsewhere", "since": "yesterday"}))
    lines: list[str] = []
    Trainer(config(f"train.output_dir={run}", "train.max_steps=5"), log=lines.append).fit()
    assert any("stale lock" in line and "999999" in line for line in lines)
    assert (run / LOCK_NAME).read_text() == ""  # released at the end


def test_two_runs_started_together_in_one_directory(tmp_path):
    """Both used to pass the "already holds a run" check; one crashed, and metrics.jsonl interleaved both."""
    cfg, run = write_config(tmp_path, log_every=5), tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "textvae", "train", str(cfg), f"train.output_dir={run}"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in "ab"]
    results = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "Traceback" not in loser
    assert "in use by another textvae run" in loser or "already holds a run" in loser
    records = strict_json_lines(run / "metrics.jsonl")
    steps = [(r["split"], r["step"]) for r in records]
    assert len(steps) == len(set(steps)) == 6 + 3  # one run's records: train every 5 steps, valid every 10


# -- a directory never left unusable --------------------------------------------------------------------


def test_a_run_whose_first_checkpoint_failed_can_be_started_again(tmp_path, monkeypatch):
    run = tmp_path / "run"

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trainer_module, "save_checkpoint", no_room)
    with pytest.raises(DiskFullError, match=f"start again with train.output_dir={run}"):
        Trainer(config(f"train.output_dir={run}", "train.log_every=5"), log=lambda s: None).fit()
    monkeypatch.undo()
    assert (run / "metrics.jsonl").exists() and not (run / "last").exists()
    with pytest.raises(
        ModelDirError, match=f"stopped before its first checkpoint; start it again with train.output_dir={run}"
    ):
        Trainer(config(f"train.resume={run}"), log=lambda s: None)
    lines: list[str] = []
    Trainer(config(f"train.output_dir={run}", "train.max_steps=5"), log=lines.append).fit()
    assert any("stopped before its first checkpoint; starting over" in line for line in lines)
    assert find_checkpoint(run) == run / "last"
    assert (run / "metrics.incomplete.jsonl").exists()  # the failed run's records are kept aside


def test_a_directory_with_a_checkpoint_is_never_started_over(tmp_path):
    run = tmp_path / "run"
    Trainer(config(f"train.output_dir={run}"), log=lambda s: None).fit(stop_at=5)
    (run / "metrics.jsonl").unlink(missing_ok=True)  # even without records, last/ is a run
    with pytest.raises(TextVAEError, match="already holds a run"):
        Trainer(config(f"train.output_dir={run}"), log=lambda s: None)


# -- full disk ----------------------------------------------------------------------------------------------


def test_full_disk_while_appending_a_record_leaves_no_partial_line(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(config(f"train.output_dir={run}", "train.log_every=5"), log=lambda s: None)
    real_write, calls = os.write, {"n": 0}

    def write(fd, data):
        if os.fstat(fd).st_size > 0 and Path(f"/proc/self/fd/{fd}").resolve().name == "metrics.jsonl":
            calls["n"] += 1
            real_write(fd, bytes(data)[:7])  # part of the line reaches the disk, then it is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(records_module.os, "write", write)
    with pytest.raises(DiskFullError, match=rf"no space left on device.*continue with train.resume={run}"):
        trainer.fit()
    monkeypatch.undo()
    assert calls["n"] == 1
    strict_json_lines(run / "metrics.jsonl")  # whole lines only
    assert not list(run.glob("*.tmp"))


def test_full_disk_at_a_checkpoint_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    run, calls = tmp_path / "run", {"n": 0}
    real = checkpoint_module.torch.save

    def save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint: the first one must survive
            Path(f).write_bytes(b"\0" * 100)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint_module.torch, "save", save)
    monkeypatch.setattr(checkpoint_module, "is_disk_full", lambda e, path=None: "inline_container" in str(e))
    cfg = write_config(tmp_path)
    assert main(["train", str(cfg), f"train.output_dir={run}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"no space left on device while saving {run / 'last'}; the previous checkpoint" in err
    assert f"continue with train.resume={run}" in err
    assert not (run / "last.tmp").exists()
    assert find_checkpoint(run) == run / "last"
    TextVAE.from_pretrained(run / "last")


# -- a diverged run does not report success -----------------------------------------------------------------


def test_a_run_that_skips_most_updates_fails_and_writes_strict_json(tmp_path):
    """lr=1e6 with on_nonfinite=skip: 59 of 60 updates were skipped, the run exited 0, printed "model saved
    in .../best" with no best/, and wrote NaN literals into metrics.jsonl."""
    cfg, run = write_config(tmp_path, log_every=5), tmp_path / "run"
    proc = cli(["train", str(cfg), f"train.output_dir={run}", "train.lr=1e6", "train.max_steps=60"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "diverged" in proc.stderr and "lower train.lr" in proc.stderr
    assert "model saved" not in proc.stdout
    strict_json_lines(run / "metrics.jsonl")


def test_skipping_more_than_the_allowed_share_of_updates_stops_the_run(tmp_path):
    run = tmp_path / "run"
    cfg = config(f"train.output_dir={run}", "train.lr=1e6", "train.eval_every=100", "train.max_steps=40")
    with pytest.raises(TextVAEError, match=r"of the 20 updates so far were skipped .* diverged"):
        Trainer(cfg, log=lambda s: None).fit()


def test_non_finite_validation_stops_the_run_and_keeps_last(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real = trainer_module.elbo_stats
    calls = {"n": 0}

    def broken_from_second(*a, **k):
        stats = real(*a, **k)
        calls["n"] += 1
        if calls["n"] >= 2:
            stats = {**stats, "neg_elbo": float("inf"), "rec": float("nan")}
        return stats

    monkeypatch.setattr(trainer_module, "elbo_stats", broken_from_second)
    with pytest.raises(TextVAEError, match="validation -ELBO is not finite at step 20"):
        Trainer(config(f"train.output_dir={run}", "train.checkpoint_every=100"), log=lambda s: None).fit()
    records = strict_json_lines(run / "metrics.jsonl")
    assert records[-1]["neg_elbo"] is None and records[-1]["step"] == 20
    assert torch.load(run / "last" / "trainer_state.pt", weights_only=True)["counters"]["step"] == 10


def test_summary_names_best_only_when_it_exists(tmp_path, capsys):
    cfg, run = write_config(tmp_path), tmp_path / "run"
    assert main(["train", str(cfg), f"train.output_dir={run}", "train.max_steps=10"]) == 0
    assert f"model saved in {run}/best" in capsys.readouterr().out


# -- signals ----------------------------------------------------------------------------------------------------


def test_sigterm_during_setup_exits_143_with_a_message(tmp_path):
    cfg, run = write_config(tmp_path), tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "textvae", "train", str(cfg), f"train.output_dir={run}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # importing torch / building the corpus: before the training loop's own handlers
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err


def test_two_quick_ctrl_c_exit_130_wherever_they_land(tmp_path):
    cfg = write_config(tmp_path, max_steps=400, checkpoint_every=2, eval_every=50)
    for i, delay in enumerate((0.0, 0.002, 0.02)):
        run = tmp_path / f"run{i}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "textvae", "train", str(cfg), f"train.output_dir={run}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 120
        while not (run / "last.tmp").exists() and not (run / "last").exists():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.001)
        proc.send_signal(signal.SIGINT)
        time.sleep(delay)
        for _ in range(30):  # an impatient user: Ctrl-C held down while the run stops and exits
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGINT)
            time.sleep(0.003)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (delay, err)
        assert "Traceback" not in err


# -- incomplete model directories ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("m") / "run"
    Trainer(config(f"train.output_dir={run}", "train.max_steps=5"), log=lambda s: None).fit()
    return run / "best"


def test_a_model_directory_without_its_tokenizer_is_one_line(model_dir, tmp_path):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    shutil.rmtree(broken / "tokenizer")
    proc = cli(["sample", str(broken), "--num", "2"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "has no tokenizer/ folder" in proc.stderr


def test_weights_whose_checksum_entry_was_removed_load_with_a_warning(model_dir, tmp_path):
    import shutil

    edited = tmp_path / "model"
    shutil.copytree(model_dir, edited)
    info = json.loads((edited / "config.json").read_text())
    del info["weights_sha256"]
    (edited / "config.json").write_text(json.dumps(info))
    with pytest.warns(UserWarning, match="records no checksum for model.safetensors"):
        TextVAE.from_pretrained(edited)
    proc = cli(["sample", str(edited), "--num", "1"])
    assert proc.returncode == 0 and "textvae: warning: " in proc.stderr and "checksum" in proc.stderr
