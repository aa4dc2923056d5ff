"""Variety statistics of a rendered corpus, read from its songs' metadata.json files."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from .metadata import validate_metadata


def corpus_stats(root: str | os.PathLike) -> dict:
    """Counts over every ``root/song_*/metadata.json``: songs, stems, distinct programs / instruments /
    tags, and histograms of roles, styles, modes, meters, soundfonts, splits; tempo range (bpm)."""
    metas = []
    for path in sorted(Path(root).glob("song_*/metadata.json")):
        meta = json.loads(path.read_text(encoding="utf-8"))
        validate_metadata(meta, path.parent)
        metas.append(meta)
    stems = [s for m in metas for s in m["stems"].values()]
    tempos = [m["tempo"] for m in metas]
    return {
        "songs": len(metas),
        "stems": len(stems),
        "stems_per_song": Counter(len(m["stems"]) for m in metas),
        "programs": len({(s["is_drum"], s["program"]) for s in stems}),
        "instruments": len({s["instrument"] for s in stems}),
        "families": Counter(s["family"] for s in stems),
        "roles": Counter(s["role"] for s in stems),
        "part_styles": len({(s["role"], s["style"]) for s in stems}),
        "styles": Counter(m["style"] for m in metas),
        "modes": Counter(m["mode"] for m in metas),
        "meters": Counter("/".join(map(str, m["meter"])) for m in metas),
        "keys": len({m["key"] for m in metas}),
        "soundfonts": Counter(m["soundfont"] for m in metas),
        "splits": Counter(m["split"] for m in metas),
        "tempo_range": (min(tempos), max(tempos)) if tempos else None,
        "distinct_tags": len({t for s in stems for t in s["tags"]}),
        "distinct_tag_sets": len({tuple(sorted(s["tags"])) for s in stems}),
    }


def format_stats(stats: dict) -> str:
    """``stats`` as readable lines (histograms most-common first)."""
    lines = []
    for key, val in stats.items():
        if isinstance(val, Counter):
            val = ", ".join(f"{k}: {v}" for k, v in val.most_common())
        lines.append(f"{key}: {val}")
    return "\n".join(lines)
