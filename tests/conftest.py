"""Shared test setup: 🤗 caches in a throwaway folder and no hub access.

Set before any test module imports ``datasets`` / ``transformers``, which read these variables at import.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_HF_TMP = tempfile.mkdtemp(prefix="textvae-tests-hf-")
atexit.register(shutil.rmtree, _HF_TMP, ignore_errors=True)
os.environ["HF_DATASETS_CACHE"] = os.path.join(_HF_TMP, "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"  # a test that reaches for the hub fails at once instead of retrying
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # quiet fork warnings from datasets.map

import torch  # noqa: E402  (after the environment above is set)

# Tiny test models gain nothing from a second thread, and on a shared 2-core machine two threads per
# process oversubscribe the cores (OpenMP spin-waits): one thread is both faster and steadier here.
torch.set_num_threads(1)
