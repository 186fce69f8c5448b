"""Safety of what training writes and what loading reads: crashes mid-checkpoint, tampered or mismatched
files, non-finite weights, remote code. Each test fails when the protection it names is removed."""

import errno
import json
import shutil
import signal
import struct
import zipfile
from pathlib import Path

import pytest
import torch

import textvae
from textvae.config import Config, DataConfig, ModelConfig
from textvae.data.tokenizer import train_tokenizer
from textvae.errors import DiskFullError, ModelDirError, TextVAEError
from textvae.fileio import sha256_file
from textvae.model import persistence
from textvae.model.persistence import read_config
from textvae.model.pretrained import load_backbone
from textvae.model.vae import TextVAE
from textvae.training.checkpoint import STATE_NAME, find_checkpoint, load_trainer_state, save_checkpoint
from textvae.training.trainer import Trainer

SETTINGS = {
    "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
    "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4, "word_dropout": 0.2, "dropout": 0.1},
    "train": {"max_steps": 10, "batch_size": 16, "eval_every": 20, "checkpoint_every": 5, "progress": False},
}


def config(*overrides: str) -> Config:
    return Config.from_dict(SETTINGS).apply_overrides(list(overrides))


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A run stopped after 5 of its 10 steps: ``last/`` holds a resumable checkpoint. Tests copy it."""
    run = tmp_path_factory.mktemp("stopped") / "run"
    Trainer(config(f"train.output_dir={run}"), log=lambda s: None).fit(stop_at=5)
    return run


@pytest.fixture
def run(stopped_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(stopped_run, copy)
    return copy


def tensors_equal(a: TextVAE, b: TextVAE) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(run, monkeypatch):
    """Atomic swap: a save that dies half-way through model.safetensors leaves ``last/`` untouched."""
    last = run / "last"
    before, state = TextVAE.from_pretrained(last), load_trainer_state(last)
    newer = TextVAE.from_pretrained(last)
    with torch.no_grad():
        for p in newer.parameters():
            p.add_(1.0)

    def disk_full(model, filename, *args, **kwargs):
        with open(filename, "wb") as f:
            f.write(b"\0" * 4096)  # part of the file made it to disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(persistence, "save_model", disk_full)
    with pytest.raises(DiskFullError, match="no space left on device .* the previous checkpoint .* is intact"):
        save_checkpoint(newer, last, {"train": read_config(last)["train"]}, state)
    monkeypatch.undo()
    assert not (run / "last.tmp").exists()  # the half-written checkpoint was removed
    assert find_checkpoint(run) == last
    assert tensors_equal(TextVAE.from_pretrained(last), before)
    assert load_trainer_state(last)["counters"]["step"] == 5


@pytest.mark.parametrize("how", ["crash_between_renames", "new_checkpoint_absent"])
def test_crash_mid_swap_resumes_from_last_old(run, monkeypatch, how):
    """``last/`` renamed to ``last.old/`` and the new one not in place: resume finds and uses last.old."""
    last, old = run / "last", run / "last.old"
    before = TextVAE.from_pretrained(last)
    if how == "crash_between_renames":  # the real code path, stopped after its first rename
        rename = Path.rename

        def crash_on_second_rename(self, target):
            if self.name == "last.tmp":
                raise OSError(errno.EIO, "power lost")
            return rename(self, target)

        monkeypatch.setattr(Path, "rename", crash_on_second_rename)
        with pytest.raises(OSError, match="power lost"):
            save_checkpoint(before, last, {"train": read_config(last)["train"]}, load_trainer_state(last))
        monkeypatch.undo()
        assert (run / "last.tmp").is_dir()
    else:
        last.rename(old)
    assert not last.exists()
    assert find_checkpoint(run) == old
    assert tensors_equal(TextVAE.from_pretrained(old), before)
    logs: list[str] = []
    Trainer(config(f"train.resume={run}"), log=logs.append).fit()
    assert any(f"resumed from {old} at step 5" in line for line in logs), logs
    assert load_trainer_state(last)["counters"]["step"] == 10
    assert not old.exists()


def test_checkpoint_records_library_versions(stopped_run):
    info = read_config(stopped_run / "last")
    assert info["textvae_version"] == textvae.__version__
    assert info["torch_version"] == torch.__version__


def flip_byte_in_tensor_data(path: Path) -> None:
    """Flip one byte in the middle of the largest tensor record of a torch zip file (its CRC is not checked)."""
    with zipfile.ZipFile(path) as z:
        record = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[record.header_offset + 26 : record.header_offset + 30])
    start = record.header_offset + 30 + name_len + extra_len
    data[start + record.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_bit_flip_in_trainer_state_is_caught_by_its_checksum(run):
    state = run / "last" / STATE_NAME
    flip_byte_in_tensor_data(state)
    torch.load(state, map_location="cpu", weights_only=True)  # still loads: only the checksum can tell
    with pytest.raises(ModelDirError, match="checksum"):
        load_trainer_state(run / "last")


class Payload:
    """Unpickling this calls ``open(marker, "w")``: code that runs while loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_trainer_state_with_matching_checksum_runs_no_code(run, tmp_path, monkeypatch):
    """An attacker who rewrites trainer_state.pt can also rewrite its checksum: weights_only still stops it."""
    # torch < 2.6, or this variable, makes torch.load unpickle anything unless weights_only=True is passed.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker, last = tmp_path / "pwned", run / "last"
    torch.save({"optimizer": Payload(marker), "counters": {}, "rng": {}}, last / STATE_NAME)
    info = json.loads((last / "config.json").read_text())
    info["trainer_state_sha256"] = sha256_file(last / STATE_NAME)
    (last / "config.json").write_text(json.dumps(info))
    with pytest.raises(ModelDirError, match="damaged"):
        load_trainer_state(last)
    assert not marker.exists()


def tiny_model(words: str) -> TextVAE:
    """A tiny model with a word tokenizer trained on ``words``."""
    tok = train_tokenizer([words] * 5, DataConfig(tokenizer="word", vocab_size=100))
    torch.manual_seed(0)
    return TextVAE(ModelConfig(vocab_size=tok.vocab_size, embedding_size=8, hidden_size=8, latent_size=2), tok)


def small_model_dir(path: Path, words: str) -> TextVAE:
    """:func:`tiny_model`, saved in ``path``."""
    model = tiny_model(words)
    model.save_pretrained(path)
    return model


def swap_tokenizer(model_dir: Path, donor_dir: Path) -> None:
    shutil.rmtree(model_dir / "tokenizer")
    shutil.copytree(donor_dir / "tokenizer", model_dir / "tokenizer")


def test_tokenizer_of_another_model_with_the_same_size_is_refused(tmp_path):
    a = small_model_dir(tmp_path / "a", "alpha beta gamma .")
    b = small_model_dir(tmp_path / "b", "delta epsilon zeta !")
    assert a.tokenizer.vocab_size == b.tokenizer.vocab_size
    TextVAE.from_pretrained(tmp_path / "a")  # loads while its own tokenizer is there
    swap_tokenizer(tmp_path / "a", tmp_path / "b")
    with pytest.raises(ModelDirError, match="fingerprint"):
        TextVAE.from_pretrained(tmp_path / "a")


def test_tokenizer_of_another_size_is_refused_naming_both_sizes(tmp_path):
    a = small_model_dir(tmp_path / "a", "alpha beta gamma .")
    c = small_model_dir(tmp_path / "c", "delta epsilon zeta eta theta !")
    na, nc = a.tokenizer.vocab_size, c.tokenizer.vocab_size
    assert na != nc
    swap_tokenizer(tmp_path / "a", tmp_path / "c")
    with pytest.raises(ModelDirError, match=rf"tokenizer has {nc} tokens but the weights expect {na}"):
        TextVAE.from_pretrained(tmp_path / "a")


def test_non_finite_weights_never_replace_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(config(f"train.output_dir={run}", "train.max_steps=5"), log=lambda s: None)
    trainer.fit()
    weights = run / "last" / "model.safetensors"
    saved = weights.read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(TextVAEError, match="non-finite"):
        trainer._save_last()
    assert weights.read_bytes() == saved
    assert all(torch.isfinite(p).all() for p in TextVAE.from_pretrained(run / "last").parameters())


def test_sigterm_saves_a_checkpoint_at_the_step_it_arrived(tmp_path):
    """SIGTERM mid-run: the current step finishes and is saved, not only the last periodic checkpoint (5)."""
    run, logs = tmp_path / "run", []
    trainer = Trainer(config(f"train.output_dir={run}"), log=logs.append)
    before, step = signal.getsignal(signal.SIGTERM), trainer._train_step

    def signalled_in_step_7(idx):
        out = step(idx)
        if trainer.state.step == 6:
            # Without textvae's handler the signal would end this whole test process instead.
            assert signal.getsignal(signal.SIGTERM) is not before, "no SIGTERM handler while training"
            signal.raise_signal(signal.SIGTERM)
        return out

    trainer._train_step = signalled_in_step_7
    trainer.fit()
    assert trainer.interrupted == "SIGTERM"
    assert load_trainer_state(run / "last")["counters"]["step"] == 7
    assert any("SIGTERM at step 7: checkpoint saved" in line for line in logs), logs
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_very_long_input_line_reaches_the_model_cut_to_max_tokens():
    model = tiny_model("alpha beta gamma .")
    batch = model.batch_from_text(["alpha " * 50_000, "beta"])
    assert batch.input_ids.shape[1] == model.data_config.max_tokens + 2  # <s> .. </s>


def test_pretrained_backbone_with_custom_code_is_refused_and_not_run(tmp_path):
    """A folder whose config.json points (``auto_map``) at its own Python file: that file is never imported."""
    folder, marker = tmp_path / "evil-model", tmp_path / "pwned"
    folder.mkdir()
    auto_map = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps({"model_type": "textvae-evil", "auto_map": auto_map}))
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    with pytest.raises(TextVAEError) as refused:
        load_backbone("encoder", str(folder))
    assert not marker.exists()
    assert "custom code" in str(refused.value)


def test_a_model_directory_cannot_switch_on_its_own_remote_code(tmp_path):
    """A downloaded model directory that sets ``trust_remote_code`` in its own config.json and points its
    backbone config at a Python file of its own: loading never imports that file."""
    from transformers import BertConfig, BertModel

    bert = tmp_path / "bert"
    hf_cfg = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    BertModel(hf_cfg).save_pretrained(str(bert))
    tok = train_tokenizer(["alpha beta gamma ."] * 3, DataConfig(tokenizer="word"))
    cfg = ModelConfig(
        encoder="pretrained", encoder_pretrained=str(bert), vocab_size=tok.vocab_size, embedding_size=8,
        hidden_size=8, latent_size=2,
    )  # fmt: skip
    saved = tmp_path / "model"
    TextVAE(cfg, tok).save_pretrained(saved)
    backbone = next(p for p in saved.iterdir() if p.is_dir() and (p / "config.json").is_file())
    marker = tmp_path / "pwned"
    (backbone / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    hf = json.loads((backbone / "config.json").read_text())
    hf |= {"model_type": "textvae-evil", "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}}
    (backbone / "config.json").write_text(json.dumps(hf))
    info = json.loads((saved / "config.json").read_text())
    info["model"]["trust_remote_code"] = True
    (saved / "config.json").write_text(json.dumps(info))
    with pytest.raises(TextVAEError):
        TextVAE.from_pretrained(saved)
    assert not marker.exists()


def pretrained_tokenizer_model_dir(path: Path) -> Path:
    """A model whose tokenizer is a 🤗 ``kind: pretrained`` one, saved in ``path``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from textvae.data.tokenizer import PretrainedTokenizer

    vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", "alpha", "beta", "gamma", "."])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tok = PretrainedTokenizer.wrap(hf)
    TextVAE(
        ModelConfig(vocab_size=tok.vocab_size, embedding_size=8, hidden_size=8, latent_size=2), tok
    ).save_pretrained(path)
    return path


def plant_tokenizer_payload(model_dir: Path, marker: Path) -> None:
    """Point the saved tokenizer's ``auto_map`` at a Python file of the directory's own that creates ``marker``."""
    folder = model_dir / "tokenizer" / "pretrained"
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import PreTrainedTokenizerFast\n"
        "class EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n"
    )
    cfg_file = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}
    cfg["tokenizer_class"] = "EvilTokenizer"
    cfg_file.write_text(json.dumps(cfg))


def test_a_tokenizer_with_its_own_code_never_runs_it_whatever_stdin_answers(tmp_path):
    """transformers asks "Do you wish to run the custom code? [y/N]" when ``trust_remote_code`` is not
    passed; answering y ran the directory's code. No prompt may appear and nothing may run."""
    import subprocess
    import sys

    model_dir, marker = pretrained_tokenizer_model_dir(tmp_path / "model"), tmp_path / "pwned"
    TextVAE.from_pretrained(model_dir)  # loads while its tokenizer is plain
    plant_tokenizer_payload(model_dir, marker)
    cmd = [sys.executable, "-m", "textvae", "sample", str(model_dir), "--num", "1"]
    proc = subprocess.run(cmd, input="y\ny\n", capture_output=True, text=True, timeout=120)
    assert not marker.exists(), "the model directory's code ran"
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "[y/N]" not in proc.stdout + proc.stderr
    assert "own" in proc.stderr and "trust_remote_code" in proc.stderr
    # The payload is real: with the caller's explicit consent it does run (so the test above can fail).
    TextVAE.from_pretrained(model_dir, trust_remote_code=True)
    assert marker.exists()
