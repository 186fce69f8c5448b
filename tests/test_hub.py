"""Sharing models on the Hub, without a network: a folder laid out as the Hub cache stands in for downloads
(conftest sets HF_HUB_OFFLINE=1), and HfApi's upload methods are replaced by copies into a local folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from textvae.cli import main
from textvae.config import DataConfig, ModelConfig
from textvae.data.tokenizer import train_tokenizer
from textvae.errors import ModelDirError, TextVAEError
from textvae.hub import looks_like_hub_id, push_model_dir
from textvae.model.vae import TextVAE
from textvae.model_card import build_model_card, find_run_metrics

COMMIT = "0123456789abcdef0123456789abcdef01234567"
VALID = {"split": "valid", "step": 40, "neg_elbo": 31.25, "rec": 29.5, "kl": 1.75, "au": 3, "ppl_elbo": 12.5}


def tiny_model() -> TextVAE:
    tok = train_tokenizer(["the cat sat on the mat", "a dog ran in the park"] * 5, DataConfig(vocab_size=100))
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, embedding_size=8, hidden_size=8, latent_size=4)
    return TextVAE(cfg, tok)


def fake_run(tmp_path: Path) -> Path:
    """A run directory: best/ (a saved model, plus a trainer file that must not be uploaded), metrics.jsonl."""
    run = tmp_path / "run"
    tiny_model().save_pretrained(run / "best")
    (run / "best" / "trainer_state.pt").write_bytes(b"not for upload")
    lines = [{"split": "train", "step": 20, "loss": 40.0}, {**VALID, "step": 20, "neg_elbo": 35.0}, VALID]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n{torn", encoding="utf-8")
    return run


def hub_cache(cache: Path, repo_id: str, files_from: Path, commit: str = COMMIT) -> Path:
    """Lay ``files_from`` out as huggingface_hub's cache does: models--user--name/snapshots/<commit>/ + refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    shutil.copytree(files_from, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """HfApi.create_repo / upload_folder copy into ``tmp_path/remote/<repo_id>``; returns the calls made."""
    from huggingface_hub import HfApi

    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kw):
        calls.append(("upload_folder", {"repo_id": repo_id, **kw}))
        shutil.copytree(folder_path, tmp_path / "remote" / repo_id, dirs_exist_ok=True)
        return f"https://huggingface.co/{repo_id}/commit/{COMMIT}"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_hub_ids_are_told_from_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_like_hub_id("user/name") and looks_like_hub_id("org-1/my.model_2")
    assert not looks_like_hub_id("name")  # a bare name is never sent to the Hub
    assert not looks_like_hub_id("./user/name") and not looks_like_hub_id("/abs/path")
    assert not looks_like_hub_id("a/b/c") and not looks_like_hub_id("user--x/name")
    (tmp_path / "user" / "name").mkdir(parents=True)
    assert not looks_like_hub_id("user/name")  # an existing local directory wins


def test_load_from_a_populated_hub_cache_offline(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "saved")
    hub_cache(tmp_path / "cache", "user/tiny", tmp_path / "saved")
    loaded = TextVAE.from_pretrained("user/tiny", cache_dir=tmp_path / "cache")
    by_commit = TextVAE.from_pretrained("user/tiny", cache_dir=tmp_path / "cache", revision=COMMIT)
    batch = model.batch_from_text(["the cat sat"])
    for m in (loaded, by_commit):
        assert torch.equal(m.encode_batch(batch).mu, model.eval().encode_batch(batch).mu)
    assert loaded.tokenizer.fingerprint() == model.tokenizer.fingerprint()


def test_hub_id_missing_from_the_cache_offline_is_one_line_and_quick(tmp_path):
    start = time.monotonic()
    with pytest.raises(ModelDirError) as e:
        TextVAE.from_pretrained("user/absent", cache_dir=tmp_path / "cache")
    assert time.monotonic() - start < 5
    msg = str(e.value)
    assert "\n" not in msg and "'user/absent'" in msg and "HF_HUB_OFFLINE" in msg and "not in the cache" in msg
    with pytest.raises(ModelDirError, match="revision 'v2' of Hub model"):
        TextVAE.from_pretrained("user/absent", cache_dir=tmp_path / "cache", revision="v2")


def test_local_files_only_is_honoured_without_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelDirError, match="not in the cache"):
        TextVAE.from_pretrained("user/absent", cache_dir=tmp_path / "cache", local_files_only=True)


def test_missing_local_paths_keep_the_plain_error(tmp_path):
    with pytest.raises(ModelDirError, match="^model directory not found: .*nothing$"):
        TextVAE.from_pretrained(tmp_path / "nothing")
    with pytest.raises(ModelDirError, match="^model directory not found: mymodel$"):
        TextVAE.from_pretrained("mymodel")
    with pytest.raises(ModelDirError, match="applies to Hub ids only"):
        TextVAE.from_pretrained(tmp_path / "nothing", revision="main")


def test_cli_commands_take_a_hub_id(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    tiny_model().save_pretrained(tmp_path / "saved")
    hub_cache(tmp_path / "cache", "user/tiny", tmp_path / "saved")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    assert main(["sample", "user/tiny", "-n", "2", "--json", "--revision", "main"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["sample", "user/other", "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'user/other' is not in the cache" in err and "Traceback" not in err


def test_model_card_is_built_from_the_config_and_metrics():
    info = {
        "textvae_version": "0.1.0",
        "model": {"encoder": "lstm", "decoder": "gru", "latent_size": 16, "vocab_size": 900, "use_latent": True},
        "data": {"train": "yelp-train.txt", "format": "lines", "text_column": "text", "valid": "yelp-valid.txt"},
        "train": {"max_steps": 3000, "batch_size": 32},
    }
    card = build_model_card(info, repo_id="me/yelp-vae", metrics=VALID)
    front, body = card.split("---\n", 2)[1:]
    assert "library_name: textvae" in front and "- variational-autoencoder" in front
    assert "`yelp-train.txt`" in body and "`yelp-valid.txt`" in body and "3000 steps" in body
    assert "lstm encoder, gru decoder, latent size 16" in body
    assert "at step 40" in body and "| negative ELBO | 31.25 |" in body and "| active units | 3 |" in body
    assert 'TextVAE.from_pretrained("me/yelp-vae")' in body and "textvae sample me/yelp-vae" in body
    config = json.loads(body.split("```json\n")[1].split("```")[0])
    assert config["model"]["latent_size"] == 16
    bare = build_model_card({"model": {"use_latent": False, "decoder": "lstm"}, "data": {}}, repo_id="a/b")
    synthetic = build_model_card({"model": {}, "data": {"train": "synthetic", "valid_fraction": 0.05}}, repo_id="a/b")
    assert "synthetic grammar" in synthetic and "5% of the corpus" in synthetic
    assert "No validation record" in bare and "- language-model" in bare and "synthetic" not in bare


def test_run_metrics_are_the_last_validation_record(tmp_path):
    run = fake_run(tmp_path)
    assert find_run_metrics(run / "best") == VALID
    assert find_run_metrics(tmp_path / "elsewhere") is None


def test_push_uploads_the_model_files_and_a_card(tmp_path, fake_hub):
    run = fake_run(tmp_path)
    url = push_model_dir(run, "me/tiny", private=True)
    assert url.endswith(COMMIT)
    assert [c[0] for c in fake_hub] == ["create_repo", "upload_folder"]
    assert fake_hub[0][1]["private"] is True and fake_hub[0][1]["exist_ok"] is True
    remote = tmp_path / "remote" / "me" / "tiny"
    names = sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file())
    assert "config.json" in names and "model.safetensors" in names and "README.md" in names
    assert any(n.startswith("tokenizer/") for n in names) and "trainer_state.pt" not in names
    card = (remote / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: textvae\n") and "| negative ELBO | 31.25 |" in card
    assert not (run / "best" / "README.md").exists()  # the model directory itself is untouched
    # What was uploaded loads back through the cache.
    hub_cache(tmp_path / "cache", "me/tiny", remote)
    TextVAE.from_pretrained("me/tiny", cache_dir=tmp_path / "cache")


def test_push_to_hub_method_and_cli(tmp_path, fake_hub, capsys):
    tiny_model().push_to_hub("me/method")
    assert (tmp_path / "remote" / "me" / "method" / "model.safetensors").is_file()
    run = fake_run(tmp_path)
    assert main(["push", str(run), "me/cli", "--message", "first"]) == 0
    assert "pushed to https://huggingface.co/me/cli" in capsys.readouterr().out
    assert fake_hub[-1][1]["commit_message"] == "first"
    assert main(["push", str(run), "me/card", "--card-only"]) == 0
    assert "library_name: textvae" in capsys.readouterr().out and not (tmp_path / "remote" / "me" / "card").exists()
    assert main(["push", str(run), "not a repo id"]) == 2
    assert "not a Hub id" in capsys.readouterr().err
    with pytest.raises(TextVAEError, match="not found"):
        push_model_dir(tmp_path / "nothing", "me/x")


def test_config_json_has_a_model_type_and_old_directories_still_load(tmp_path):
    tiny_model().save_pretrained(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    info = json.loads(cfg_path.read_text())
    assert info["model_type"] == "textvae"
    del info["model_type"]  # as written before model_type existed
    cfg_path.write_text(json.dumps(info))
    TextVAE.from_pretrained(tmp_path / "m")


def test_autoconfig_reads_a_textvae_config(tmp_path):
    tiny_model().save_pretrained(tmp_path / "m")
    # A fresh interpreter: `import textvae` before transformers must be enough (the lazy registration).
    code = (
        "import sys, textvae\n"
        "assert 'transformers' not in sys.modules\n"
        "from transformers import AutoConfig\n"
        f"c = AutoConfig.from_pretrained({str(tmp_path / 'm')!r})\n"
        "print(c.model_type, type(c).__name__, c.model['latent_size'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["textvae", "TextVAEConfig", "4"]
    from textvae.hf_config import register_auto_config

    cls = register_auto_config()
    from transformers import AutoConfig

    assert isinstance(AutoConfig.from_pretrained(str(tmp_path / "m")), cls)
