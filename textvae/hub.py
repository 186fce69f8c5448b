"""Sharing models on the Hugging Face Hub: load a model by Hub id, push a model directory with a model card.

A Hub repository of a textvae model holds exactly what :meth:`TextVAE.save_pretrained` writes (see
:mod:`textvae.model.persistence`) plus a ``README.md`` model card (:mod:`textvae.model_card`). Downloads go
through ``huggingface_hub.snapshot_download``, so the usual cache (``HF_HOME``, ``cache_dir``), revisions and
offline mode (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``) apply.

Only ``namespace/name`` ids are treated as Hub ids: a bare name that is not a local directory keeps the
"model directory not found" error instead of a network round trip.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textvae.errors import ModelDirError, TextVAEError

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE

# namespace/name, each part as the Hub allows it (letters, digits, "-", "_", "."; no "--" or "..").
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
# Files a model repository may hold; anything else in a model directory (trainer_state.pt, analysis/ ...)
# is not uploaded.
UPLOAD_PATTERNS = [
    "config.json",
    "model.safetensors",
    "README.md",
    "tokenizer/*",
    "encoder_tokenizer/*",
    "backbone_encoder/*",
    "backbone_decoder/*",
]


def looks_like_hub_id(name: str | os.PathLike) -> bool:
    """True for ``"user/name"`` strings that are not an existing local path."""
    s = str(name)
    if Path(s).exists() or s.startswith((".", "/", "~")) or "--" in s or ".." in s:
        return False
    return bool(_HUB_ID.match(s))


def _offline(local_files_only: bool) -> bool:
    # Read the variable now (huggingface_hub reads it once, at its import).
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return local_files_only or env.strip().upper() in {"1", "ON", "YES", "TRUE"}


def download_model(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """The local snapshot folder of Hub model ``repo_id`` (downloaded into the cache unless already there).

    Every failure is a one-line :class:`ModelDirError` that names the id and what to do."""
    import huggingface_hub as hf  # a core dependency (transformers, tokenizers and datasets need it too)
    from huggingface_hub import errors as hf_errors

    offline = _offline(local_files_only)
    where = f"revision {revision!r} of " if revision else ""
    try:
        folder = hf.snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            local_files_only=offline,
            token=token,
            allow_patterns=UPLOAD_PATTERNS,
            library_name="textvae",
        )
    except hf_errors.LocalEntryNotFoundError:
        if offline:
            raise ModelDirError(
                f"model directory not found: {repo_id}, and {where}Hub model {repo_id!r} is not in the cache "
                f"(offline mode); download it once online (unset HF_HUB_OFFLINE, or pass cache_dir= where it is)"
            ) from None
        raise ModelDirError(
            f"model directory not found: {repo_id}, and the Hub could not be reached to download {where}it; "
            "check the connection, or set HF_HUB_OFFLINE=1 to use the cache"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise ModelDirError(f"Hub model {repo_id!r} has no revision {revision!r}") from None
    except (hf_errors.RepositoryNotFoundError, hf_errors.GatedRepoError):
        raise ModelDirError(
            f"model directory not found: {repo_id} (not a local directory, and no Hub model {repo_id!r} "
            "you can access; for a private one, log in with `hf auth login`)"
        ) from None
    except (hf_errors.HfHubHTTPError, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelDirError(f"cannot download Hub model {repo_id!r}: {reason}") from None
    return Path(folder)


def resolve_pretrained(
    name: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """A local path for ``name``: ``name`` itself when it exists or is no Hub id (the loader then says what is
    wrong with it), else the cached snapshot of the Hub model."""
    if not looks_like_hub_id(name):
        if revision is not None:
            raise ModelDirError(f"revision={revision!r} applies to Hub ids only; {name} is a local path")
        return Path(name)
    return download_model(
        str(name), revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
    )


# -- upload ----------------------------------------------------------------------------------------------


def push_model_dir(
    model_dir: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload textvae model",
    card: str | None = None,
) -> str:
    """Upload a saved model directory (or a run directory's ``best/``) with a generated model card.

    The files are staged in a temporary folder (the model directory itself is never modified): the model's
    files (:data:`UPLOAD_PATTERNS`) and ``README.md`` = ``card`` or :func:`textvae.model_card.build_model_card`.
    Returns the URL of the commit (as ``HfApi.upload_folder`` does)."""
    import huggingface_hub as hf

    from textvae.model.persistence import read_config, resolve_model_dir
    from textvae.model_card import build_model_card, find_run_metrics

    if not _HUB_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise TextVAEError(f"{repo_id!r} is not a Hub id; use the form user/name")
    d = resolve_model_dir(model_dir)
    info = read_config(d)
    if card is None:
        card = build_model_card(info, repo_id=repo_id, metrics=find_run_metrics(d))
    api = hf.HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="textvae-push-") as tmp:
        stage = Path(tmp) / "model"
        _stage_files(d, stage)
        (stage / "README.md").write_text(card, encoding="utf-8")
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            info_url = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(stage),
                repo_type="model",
                revision=revision,
                commit_message=commit_message,
            )
        except Exception as e:  # HTTP, auth, offline: one line for the user
            if not _is_hub_error(e):
                raise
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TextVAEError(f"cannot push to {repo_id!r}: {reason} (log in with `hf auth login`?)") from None
    return str(getattr(info_url, "commit_url", info_url))


def _is_hub_error(e: Exception) -> bool:
    from huggingface_hub import errors as hf_errors

    return isinstance(e, (hf_errors.HfHubHTTPError, hf_errors.OfflineModeIsEnabled, OSError, ValueError))


def _stage_files(d: Path, stage: Path) -> None:
    from fnmatch import fnmatch

    stage.mkdir(parents=True)
    for f in sorted(d.rglob("*")):
        rel = f.relative_to(d).as_posix()
        if f.is_file() and rel != "README.md" and any(fnmatch(rel, p) for p in UPLOAD_PATTERNS):
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, stage / rel)


def push_to_hub(model: TextVAE, repo_id: str, **kwargs: Any) -> str:
    """Save ``model`` into a temporary directory and push it (see :func:`push_model_dir`)."""
    with tempfile.TemporaryDirectory(prefix="textvae-save-") as tmp:
        model.save_pretrained(tmp)
        return push_model_dir(tmp, repo_id, **kwargs)
