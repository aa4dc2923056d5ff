"""Zero-shot evaluation of a CLAP model on held-out corpus stems.

* Classification of each (non-silent) stem by instrument family and by instrument, with the prompt
  ``"a recording of {class}"`` for every class present in the split: top-1 / top-5 accuracy next to
  the chance rates (1/K, min(5, K)/K).
* Text -> audio retrieval: each stem gets a descriptive prompt (:func:`stem_prompt`, seeded) and
  the stems are ranked by cosine similarity: recall@1 / @10 of the exact stem (chance 1/N, 10/N)
  and the rate at which the top hit is at least the right instrument.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from ..audio import is_silent
from .corpus import load_song_audio, scan_songs
from .prompts import class_prompt, family_name, instrument_name, stem_prompt


def _topk_accuracy(scores: torch.Tensor, target: torch.Tensor, k: int) -> float:
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices
    return float((top == target[:, None]).any(dim=1).float().mean())


def _classify(model, audio_emb: torch.Tensor, names: list[str]) -> dict:
    classes = sorted(set(names))
    text_emb = model.embed_text([class_prompt(c) for c in classes])
    scores = audio_emb @ text_emb.T
    target = torch.tensor([classes.index(n) for n in names])
    k = len(classes)
    return {
        "classes": k,
        "top1": _topk_accuracy(scores, target, 1),
        "top5": _topk_accuracy(scores, target, 5),
        "chance_top1": 1.0 / k,
        "chance_top5": min(5, k) / k,
    }


def evaluate_clap(
    model,
    songs_root: str | os.PathLike,
    split: str = "test",
    *,
    seed: int = 0,
    max_seconds: float | None = 20.0,
    silence_db: float = -50.0,
    progress: bool = False,
) -> dict:
    """Evaluate ``model`` (a :class:`~diffariff.clap.builtin.BuiltinClap` or anything with the same
    ``embed_audio`` / ``embed_text`` / ``config.frontend_rate``) on the stems of ``split``.

    Each stem is embedded over at most its first ``max_seconds`` seconds; stems quieter than
    ``silence_db`` dBFS RMS are skipped. Returns a JSON-able dict (see :func:`format_clap_report`).
    Raises DatasetError when the split has no songs.
    """
    songs = scan_songs(songs_root, split)
    rate = int(model.config.frontend_rate)
    limit = None if max_seconds is None else int(round(max_seconds * rate))
    by_length: dict[int, list[tuple[np.ndarray, dict]]] = defaultdict(list)
    for song in tqdm(songs, desc="clap eval: loading", disable=not progress):
        audio = load_song_audio(song, rate, with_mixture=False)
        for name, meta in song.stems.items():
            clip = audio[name][:limit] if limit else audio[name]
            if not is_silent(clip, silence_db):
                by_length[clip.shape[0]].append((clip, meta))
    metas: list[dict] = []
    embs: list[torch.Tensor] = []
    for n in sorted(by_length):
        group = by_length[n]
        embs.append(model.embed_audio(np.stack([c for c, _ in group]), sample_rate=rate, progress=progress))
        metas.extend(m for _, m in group)
    if not metas:
        return {"split": split, "songs": len(songs), "stems": 0}
    audio_emb = torch.cat(embs)
    families = [family_name(m) for m in metas]
    instruments = [instrument_name(m) for m in metas]
    rng = random.Random(seed)
    prompts = [stem_prompt(m, rng, tag_dropout=0.0) for m in metas]
    text_emb = model.embed_text(prompts)
    sims = text_emb @ audio_emb.T  # [N text, N audio]
    n = len(metas)
    target = torch.arange(n)
    top1 = sims.argmax(dim=1)
    same_inst = [instruments[int(j)] == instruments[i] for i, j in enumerate(top1)]
    return {
        "split": split,
        "songs": len(songs),
        "stems": n,
        "family": _classify(model, audio_emb, families),
        "instrument": _classify(model, audio_emb, instruments),
        "retrieval": {
            "n": n,
            "r1": _topk_accuracy(sims, target, 1),
            "r10": _topk_accuracy(sims, target, 10),
            "chance_r1": 1.0 / n,
            "chance_r10": min(10, n) / n,
            "r1_same_instrument": float(np.mean(same_inst)),
        },
    }


def format_clap_report(result: dict) -> str:
    """A few aligned lines summarising :func:`evaluate_clap`'s result."""
    lines = [f"CLAP evaluation on split '{result['split']}': {result['songs']} songs, {result['stems']} stems"]
    for key in ("family", "instrument"):
        r = result.get(key)
        if r:
            lines.append(
                f"  zero-shot {key:<10} ({r['classes']:3d} classes): top-1 {r['top1']:.3f} "
                f"(chance {r['chance_top1']:.3f})  top-5 {r['top5']:.3f} (chance {r['chance_top5']:.3f})"
            )
    r = result.get("retrieval")
    if r:
        lines.append(
            f"  text->audio retrieval ({r['n']} stems): R@1 {r['r1']:.3f} (chance {r['chance_r1']:.3f})  "
            f"R@10 {r['r10']:.3f} (chance {r['chance_r10']:.3f})  top-1 same instrument "
            f"{r['r1_same_instrument']:.3f}"
        )
    return "\n".join(lines)
