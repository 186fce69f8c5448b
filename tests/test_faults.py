"""Fault injection: training processes killed with SIGKILL at random moments and inside every phase of a
checkpoint write (``TEXTVAE_FAULT``, :mod:`textvae.training.faults`), then resumed until done, must end
with the metrics and weights of an uninterrupted run; a training run on a small full file system (a tmpfs
in a private mount namespace) must stop with one line, leave no half-written file, and resume exactly.

The CI-sized tests kill a few times; ``-m slow`` runs the long harness (>= 20 kills) whose tally
``docs/RELIABILITY.md`` reports.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from test_reliability import SETTINGS  # the run of the single-kill test: 60 steps, checkpoints every 5

from textvae.config import Config
from textvae.errors import ModelDirError
from textvae.model.vae import TextVAE
from textvae.training.checkpoint import find_checkpoint
from textvae.training.trainer import Trainer

#: The phases of a checkpoint write where :func:`save_checkpoint` has a fault point.
PHASES = ("checkpoint:started", "checkpoint:state-written", "checkpoint:written", "checkpoint:old-moved",
          "checkpoint:swapped")  # fmt: skip


@dataclass
class Kill:
    """Where a segment of the run dies: at the ``nth`` pass of a fault point, or ``after`` seconds."""

    point: str | None = None
    nth: int = 1
    after: float = 0.0

    def __str__(self) -> str:
        return f"{self.point}@{self.nth}" if self.point else f"SIGKILL after {self.after:.2f}s"


def env() -> dict[str, str]:
    # Same thread count as this process: float reductions (hence losses) must match bit for bit.
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def records(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("_per_sec")} for r in rows]


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = TextVAE.from_pretrained(a).state_dict(), TextVAE.from_pretrained(b).state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def cfg_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "cfg.yaml"
    Config.from_dict(SETTINGS).to_yaml(p)
    return p


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run with the same config and seed."""
    run = tmp_path_factory.mktemp("ref") / "run"
    Trainer(Config.from_dict(SETTINGS).apply_overrides([f"train.output_dir={run}"]), log=lambda s: None).fit()
    return run


@pytest.fixture(scope="module")
def long_cfg_file(tmp_path_factory) -> Path:
    """300 steps, as the issue's trial: long enough that every random kill lands inside the run."""
    p = tmp_path_factory.mktemp("cfg") / "long.yaml"
    Config.from_dict(SETTINGS).apply_overrides(["train.max_steps=300"]).to_yaml(p)
    return p


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory, long_cfg_file) -> Path:
    run = tmp_path_factory.mktemp("ref") / "run"
    Trainer(Config.from_yaml(long_cfg_file).apply_overrides([f"train.output_dir={run}"]), log=lambda s: None).fit()
    return run


def segment_args(cfg: Path, run: Path) -> list[str]:
    """Resume when there is a checkpoint; otherwise (killed before the first one) start the run again."""
    try:
        find_checkpoint(run)
        return [str(cfg), f"train.resume={run}"]
    except ModelDirError:
        return [str(cfg), f"train.output_dir={run}"]


def run_with_kills(cfg: Path, run: Path, kills: list[Kill]) -> list[int]:
    """Run segment after segment, each dying as its :class:`Kill` says, then one to the end. Returns the
    exit status of each killed segment (-9, or 0 when it finished before its kill)."""
    codes = []
    for kill in kills:
        extra = {"TEXTVAE_FAULT": f"{kill.point}@{kill.nth}"} if kill.point else {}
        cmd = [sys.executable, "-m", "textvae", "train", *segment_args(cfg, run)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env() | extra)
        if kill.point is None:
            # ``after`` counts from the moment this segment trains (its first record), not from its start:
            # imports take seconds, and a kill before training would only test the loader.
            started, metrics = time.time(), run / "metrics.jsonl"
            while proc.poll() is None and not (metrics.exists() and metrics.stat().st_mtime > started):
                time.sleep(0.005)
            deadline = time.time() + kill.after
            while proc.poll() is None and time.time() < deadline:
                time.sleep(0.005)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, -signal.SIGKILL), f"{kill}: exit {proc.returncode}\n{err}"
        codes.append(proc.returncode)
    final = subprocess.run(
        [sys.executable, "-m", "textvae", "train", *segment_args(cfg, run)], capture_output=True, text=True, env=env()
    )
    assert final.returncode == 0, final.stderr
    return codes


def assert_same_as_reference(run: Path, reference: Path) -> None:
    assert records(run) == records(reference)
    assert same_weights(run / "last", reference / "last")
    assert same_weights(run / "best", reference / "best")
    assert not [p.name for p in run.iterdir() if p.name.endswith((".tmp", ".old"))]


def test_killed_inside_every_phase_of_a_checkpoint_write_then_resumed(tmp_path, cfg_file, reference):
    """One run killed five times, once inside each phase of a checkpoint write (the first kill inside the
    very first checkpoint: the directory must then start over, not be stuck), plus one random-time kill."""
    run = tmp_path / "run"
    kills = [Kill(PHASES[0], 1)] + [Kill(p, 2) for p in PHASES[1:]] + [Kill(after=random.uniform(0.0, 0.3))]
    codes = run_with_kills(cfg_file, run, kills)
    assert codes[: len(PHASES)] == [-signal.SIGKILL] * len(PHASES)  # each fault point was reached
    assert_same_as_reference(run, reference)


@pytest.mark.slow
def test_random_kill_harness_at_length(tmp_path, long_cfg_file, long_reference):
    """Several runs, each killed several times at random points (fault points or random moments); every
    run must end identical to the uninterrupted one. Prints the tally that docs/RELIABILITY.md reports."""
    rng = random.Random(int(os.environ.get("TEXTVAE_KILL_SEED", "0")))
    runs, kills_per_run = int(os.environ.get("TEXTVAE_KILL_RUNS", "4")), 6
    tally = {"kills": 0, "identical": 0, "runs": 0}
    for r in range(runs):
        kills = [
            Kill(rng.choice(PHASES), rng.randint(1, 3)) if rng.random() < 0.5 else Kill(after=rng.uniform(0.0, 1.0))
            for _ in range(kills_per_run)
        ]
        run = tmp_path / f"run{r}"
        codes = run_with_kills(long_cfg_file, run, kills)
        killed = sum(c == -signal.SIGKILL for c in codes)
        assert_same_as_reference(run, long_reference)
        tally["kills"] += killed
        tally["identical"] += killed  # every kill of this run was followed by an exact resume
        tally["runs"] += 1
        print(f"run {r}: {', '.join(map(str, kills))} -> {killed} kills, identical to the uninterrupted run")
    print(f"kill harness: {tally['identical']}/{tally['kills']} killed segments resumed identically in {runs} runs")
    assert tally["kills"] >= 20


# -- a small full file system ---------------------------------------------------------------------------


def _can_mount_tmpfs() -> str | None:
    """None when this machine lets us mount a tmpfs in a private namespace, else why not."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "needs Linux with unshare(1)"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"cannot mount a tmpfs here ({probe.stderr.strip() or probe.returncode})"
    return None


NO_TMPFS = _can_mount_tmpfs()


def train_on_tmpfs(cfg: Path, size_kb: int, mount: Path, out: Path) -> subprocess.CompletedProcess:
    """``textvae train`` with its run directory on a ``size_kb`` tmpfs; the directory is copied to ``out``
    afterwards (the tmpfs vanishes with its namespace)."""
    mount.mkdir()
    script = 'mount -t tmpfs -o size="$1"k tmpfs "$2" || exit 99; m="$2"; shift 2; "$@"; rc=$?; cp -a "$m/run" "$OUT_DIR/"; exit $rc'
    cmd = ["unshare", "-rm", "sh", "-c", script, "sh", str(size_kb), str(mount),
           sys.executable, "-m", "textvae", "train", str(cfg), f"train.output_dir={mount / 'run'}"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env() | {"OUT_DIR": str(out)}, timeout=300)


@pytest.mark.skipif(NO_TMPFS is not None, reason=str(NO_TMPFS))
@pytest.mark.parametrize("size_kb", [128, 384, 576])  # full at the first save, at a later one, with best/ too
def test_a_full_file_system_at_a_save_is_one_line_and_resumable(tmp_path, cfg_file, reference, size_kb):
    out = tmp_path / "out"
    out.mkdir()
    proc = train_on_tmpfs(cfg_file, size_kb, tmp_path / "mnt", out)
    assert proc.returncode != 99, proc.stderr
    run = out / "run"
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "no space left on device" in err[0], proc.stderr
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]  # nothing half-written left
    assert all(json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())
    # What was saved before is intact: with room again, the run continues (or restarts) and ends exactly
    # as the uninterrupted one.
    renamed = tmp_path / "run"
    shutil.copytree(run, renamed)
    try:
        find_checkpoint(renamed)
        assert "continue with train.resume=" in err[0]
        resumed = ["train.resume=" + str(renamed)]
    except ModelDirError:
        assert "start again with train.output_dir=" in err[0]
        resumed = ["train.output_dir=" + str(renamed)]
    Trainer(Config.from_yaml(cfg_file).apply_overrides(resumed), log=lambda s: None).fit()
    assert_same_as_reference(renamed, reference)
