import json

import pytest
import torch

from textvae.config import Config
from textvae.errors import TextVAEError
from textvae.model.vae import TextVAE
from textvae.training.trainer import Trainer


def tiny_config(out, **overrides) -> Config:
    cfg = Config.from_dict(
        {
            "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
            "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4, "word_dropout": 0.2, "dropout": 0.1},
            "train": {
                "output_dir": str(out),
                "max_steps": 12,
                "batch_size": 16,
                "eval_every": 6,
                "log_every": 2,
                "progress": False,
                "beta_warmup_steps": 10,
            },
        }
    )
    return cfg.apply_overrides([f"{k}={v}" for k, v in overrides.items()])


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_training_writes_run_directory(tmp_path):
    run = tmp_path / "run"
    result = Trainer(tiny_config(run), log=lambda s: None).fit()
    assert result["step"] == 12 and result["split"] == "valid"
    for sub in ("best", "last"):
        assert (run / sub / "config.json").is_file() and (run / sub / "model.safetensors").is_file()
    assert (run / "last" / "trainer_state.pt").is_file() and not (run / "best" / "trainer_state.pt").exists()
    recs = records(run)
    train = [r for r in recs if r["split"] == "train"]
    valid = [r for r in recs if r["split"] == "valid"]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in valid] == [6, 12]
    assert {"neg_elbo", "rec", "kl", "au", "kl_per_dim"} <= valid[0].keys()
    assert all(r["tokens_per_sec"] > 0 for r in train)
    assert Config.from_yaml(run / "config.yaml").model.vocab_size > 4
    vae = TextVAE.from_pretrained(run)
    assert len(vae.sample(3, seed=0)) == 3


def test_refuses_to_overwrite_an_existing_run(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(run, **{"train.max_steps": 2, "train.eval_every": 2}), log=lambda s: None).fit()
    before = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(TextVAEError, match="already holds a run"):
        Trainer(tiny_config(run), log=lambda s: None)
    assert (run / "metrics.jsonl").read_bytes() == before


@pytest.mark.parametrize(
    "extra",
    [
        {"model.mmd_weight": 0.0},
        {"model.mmd_weight": 1.0},
        {"model.prior": "mog", "model.prior_components": 3},
        {"model.prior": "vamp", "model.posterior": "iaf", "model.prior_components": 3},
    ],
    ids=["plain", "mmd", "mog", "vamp-iaf"],
)
def test_resume_equals_uninterrupted_run(tmp_path, extra):
    """Also with the MMD term, whose prior draws come from the restored random state, and with learned priors
    and a flow, whose parameters and optimizer moments must come back exactly."""
    mmd_weight = extra.get("model.mmd_weight", 0.0)
    full = tmp_path / "full"
    Trainer(tiny_config(full, **extra), log=lambda s: None).fit()
    part = tmp_path / "part"
    # Interrupt between evaluations (step 7 is not a multiple of eval_every or log_every).
    Trainer(tiny_config(part, **extra), log=lambda s: None).fit(stop_at=7)
    Trainer(tiny_config(part, **extra, **{"train.resume": str(part)}), log=lambda s: None).fit()
    train = [r for r in records(full) if r["split"] == "train"]
    assert all(("mmd" in r) == (mmd_weight > 0) for r in train)

    def strip(rs):
        return [{k: v for k, v in r.items() if not k.endswith("_per_sec")} for r in rs]

    assert strip(records(part)) == strip(records(full))
    a = TextVAE.from_pretrained(full / "last").state_dict()
    b = TextVAE.from_pretrained(part / "last").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_a_different_model_is_refused(tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(run), log=lambda s: None).fit(stop_at=3)
    with pytest.raises(TextVAEError, match=r"differs from the run.s own .* in model.hidden_size \(run: 24, now: 8\)"):
        Trainer(tiny_config(run, **{"train.resume": str(run), "model.hidden_size": 8}), log=lambda s: None).fit()


def test_early_stopping(tmp_path):
    run = tmp_path / "run"
    # lr 0 never improves: patience 1 stops at the second evaluation.
    cfg = tiny_config(run, **{"train.lr": 0.0, "train.early_stopping_patience": 1, "train.eval_every": 2})
    result = Trainer(cfg, log=lambda s: None).fit()
    assert result["step"] == 4


def test_language_model_baseline_trains(tmp_path):
    run = tmp_path / "lm"
    result = Trainer(tiny_config(run, **{"model.use_latent": False}), log=lambda s: None).fit()
    assert result["kl"] == 0.0 and result["au"] == 0


def test_conditional_vae_trains_and_generates_per_label(tmp_path):
    run = tmp_path / "cvae"
    cfg = tiny_config(run, **{"data.label_column": "sentiment", "model.conditional": True})
    Trainer(cfg, log=lambda s: None).fit()
    vae = TextVAE.from_pretrained(run)
    assert vae.label_names == ["negative", "positive"] and vae.config.num_labels == 2
    assert len(vae.sample(3, seed=0, label="positive")) == 3
    assert len(vae.reconstruct(["the cat happily visits the park ."], labels=["negative"])) == 1
    with pytest.raises(TextVAEError, match="not seen in training"):
        vae.sample(2, label="neutral")
    with pytest.raises(TextVAEError, match="give a label"):
        vae.sample(2)


def test_conditional_without_labels_is_a_config_error(tmp_path):
    with pytest.raises(TextVAEError, match="data.label_column"):
        Trainer(tiny_config(tmp_path / "r", **{"model.conditional": True}), log=lambda s: None).fit()


def test_time_budget_stops_with_a_validation_and_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    messages = []
    result = Trainer(tiny_config(run, **{"train.max_minutes": 1e-6}), log=messages.append).fit()
    assert result["step"] == 1 and result["split"] == "valid"  # out of time after the first step
    assert any("max_minutes" in m for m in messages)
    assert TextVAE.from_pretrained(run / "last") is not None
    assert [r["step"] for r in records(run) if r["split"] == "valid"] == [1]


def test_train_to_completion_resumes_a_cut_run_and_keeps_a_finished_one(tmp_path):
    from textvae.training.runs import train_to_completion

    full, part = tmp_path / "full", tmp_path / "part"
    Trainer(tiny_config(full), log=lambda s: None).fit()
    Trainer(tiny_config(part), log=lambda s: None).fit(stop_at=7)  # cut, as a killed benchmark leaves it
    assert train_to_completion(tiny_config(part), log=lambda s: None) == part
    a = TextVAE.from_pretrained(full / "last").state_dict()
    b = TextVAE.from_pretrained(part / "last").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    before = (part / "metrics.jsonl").read_bytes()
    train_to_completion(tiny_config(part), log=lambda s: None)  # finished: nothing trained, nothing lost
    assert (part / "metrics.jsonl").read_bytes() == before


def test_train_to_completion_stops_the_script_when_training_was_interrupted(tmp_path, monkeypatch):
    from textvae.training import runs

    def interrupted_fit(self, stop_at=None):
        self.interrupted = "SIGTERM"
        return {}

    monkeypatch.setattr(Trainer, "fit", interrupted_fit)
    with pytest.raises(SystemExit) as exc:
        runs.train_to_completion(tiny_config(tmp_path / "run"), log=lambda s: None)
    assert exc.value.code == 143


@pytest.mark.parametrize("select_by, best_is_last", [("neg_elbo", False), ("objective", True)])
def test_select_by_picks_the_checkpoint_with_the_lowest_chosen_figure(tmp_path, monkeypatch, select_by, best_is_last):
    import textvae.training.trainer as trainer_module

    real = trainer_module.elbo_stats
    scripted = iter([(1.0, 2.0), (2.0, 1.0)])  # (neg_elbo, objective) at the two validations: they disagree

    def fake(*args, **kwargs):
        stats = real(*args, **kwargs)
        stats["neg_elbo"], stats["objective"] = next(scripted)
        return stats

    monkeypatch.setattr(trainer_module, "elbo_stats", fake)
    run = tmp_path / "run"
    Trainer(tiny_config(run, **{"train.select_by": select_by, "train.eval_every": 6}), log=lambda s: None).fit()
    best, last = TextVAE.from_pretrained(run / "best"), TextVAE.from_pretrained(run / "last")
    same = all(torch.equal(a, b) for a, b in zip(best.state_dict().values(), last.state_dict().values()))
    assert same is best_is_last


def test_select_by_rejects_an_unknown_figure(tmp_path):
    with pytest.raises(TextVAEError, match="train.select_by must be one of neg_elbo, objective"):
        tiny_config(tmp_path / "run", **{"train.select_by": "bleu"})
