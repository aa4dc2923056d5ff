"""Accuracy of the tempo / meter / downbeat analysis on rendered corpus songs with known timing.

A corpus song (:mod:`diffariff.data.synth.corpus`) starts on a downbeat at t = 0 and keeps one tempo
(quarter notes per minute) and one meter for its whole length, so its true grid is
``BarGrid(tempo, meter, first_downbeat_s=0)``. :func:`select_songs` plans songs (cheap, no audio) and
picks indices stratified by meter; :func:`render_set` renders them; :func:`evaluate` analyses each
mixture and scores it. Run::

    python -m diffariff.timing.evaluate --out /tmp/timing_eval --songs 30 --seconds 16 --seed 2024

Scores per song: relative tempo error (``tempo_err``), meter right or not, downbeat F-measure
(+-70 ms, :func:`downbeat_f_measure`) and first-downbeat error (seconds, the detected downbeat nearest
the true first downbeat at or after 0, modulo one bar).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .bars import BarGrid
from .tempo import analyze_audio

#: Downbeat tolerance of the F-measure (seconds), as in the MIREX beat evaluation.
TOLERANCE_S = 0.07
METERS = ((4, 4), (3, 4), (6, 8))


def select_songs(seed: int, n: int, seconds: float, meters=METERS, scan: int = 3000) -> list[int]:
    """Indices of ``n`` corpus songs of ``seed``, taking the meters in turn (as balanced as the scan of
    the first ``scan`` indices allows); only the song plans are drawn, nothing is rendered."""
    from ..data.synth.plan import plan_song

    by_meter: dict[tuple[int, int], list[int]] = {tuple(m): [] for m in meters}
    for i in range(scan):
        m = tuple(plan_song(np.random.default_rng([int(seed), i]), seconds).meter)
        if m in by_meter:
            by_meter[m].append(i)
    picked: list[int] = []
    while len(picked) < n and any(by_meter.values()):
        for m in by_meter:
            if by_meter[m] and len(picked) < n:
                picked.append(by_meter[m].pop(0))
    return sorted(picked)


def render_set(out: str | os.PathLike, seed: int, n: int, seconds: float,
               soundfont: str | os.PathLike | None = None) -> list[Path]:
    """Render the :func:`select_songs` songs into ``out`` (finished songs are kept); their folders."""
    from ..data.synth.corpus import render_song, song_is_complete, song_name

    folders = []
    for i in select_songs(seed, n, seconds):
        folder = Path(out) / song_name(i)
        if not song_is_complete(folder, seed, i, seconds, soundfont):
            render_song(i, seed, seconds, out, soundfont)
        folders.append(folder)
    return folders


def true_grid(meta: dict) -> BarGrid:
    """The exact grid of a corpus song from its ``metadata.json`` dict."""
    return BarGrid.regular(float(meta["tempo"]), tuple(meta["meter"]), 0.0, float(meta["seconds"]))


def downbeat_f_measure(est: np.ndarray, ref: np.ndarray, tolerance: float = TOLERANCE_S) -> float:
    """F-measure of estimated vs reference event times (seconds), each reference matched at most
    once within ``tolerance``."""
    est, ref = np.sort(np.asarray(est, float)), np.sort(np.asarray(ref, float))
    if len(est) == 0 or len(ref) == 0:
        return float(len(est) == len(ref))
    used = np.zeros(len(ref), bool)
    hits = 0
    for t in est:
        d = np.abs(ref - t)
        d[used] = np.inf
        j = int(np.argmin(d))
        if d[j] <= tolerance:
            used[j] = True
            hits += 1
    p, r = hits / len(est), hits / len(ref)
    return 0.0 if hits == 0 else 2 * p * r / (p + r)


def score(est: BarGrid, ref: BarGrid, seconds: float) -> dict:
    """One song's scores (module doc); beats and downbeats compared over [0, seconds - 0.5)."""
    end = seconds - 0.5
    ed, rd = est.downbeat_times(end), ref.downbeat_times(end)
    eb, rb = est.beat_times_until(end), ref.beat_times_until(end)
    first = float(est.first_downbeat_s)
    bar = ref.bar_seconds
    first_err = ((first + bar / 2) % bar) - bar / 2
    return {"tempo_err": abs(est.bpm / ref.bpm - 1.0), "meter_ok": est.meter == ref.meter,
            "downbeat_f": downbeat_f_measure(ed, rd), "beat_f": downbeat_f_measure(eb, rb),
            "first_downbeat_err_s": float(first_err)}


def evaluate(folders: list[Path]) -> dict:
    """Analyse every song's mixture; per-song rows and a summary (fractions and means)."""
    from ..audio import load_audio

    rows = []
    for folder in folders:
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        audio, sr = load_audio(folder / meta["mixture"])
        t0 = time.perf_counter()
        est = analyze_audio(audio, sr)
        row = {"song": folder.name, "tempo": meta["tempo"], "meter": "/".join(map(str, meta["meter"])),
               "style": meta["style"], "est_bpm": round(est.bpm, 2), "est_meter": est.meter_name,
               "est_first_downbeat_s": round(est.first_downbeat_s, 3), "seconds": round(time.perf_counter() - t0, 2)}
        row.update(score(est, true_grid(meta), float(meta["seconds"])))
        rows.append(row)
    return {"songs": rows, "summary": summarize(rows)}


def summarize(rows: list[dict]) -> dict:
    """Fractions of songs within 2 % / 4 % tempo, meter right, mean downbeat / beat F, and the same
    per meter."""
    def block(rs: list[dict]) -> dict:
        if not rs:
            return {}
        return {"n": len(rs), "tempo_2pct": float(np.mean([r["tempo_err"] <= 0.02 for r in rs])),
                "tempo_4pct": float(np.mean([r["tempo_err"] <= 0.04 for r in rs])),
                "meter": float(np.mean([r["meter_ok"] for r in rs])),
                "downbeat_f": float(np.mean([r["downbeat_f"] for r in rs])),
                "beat_f": float(np.mean([r["beat_f"] for r in rs])),
                "first_downbeat_70ms": float(np.mean([abs(r["first_downbeat_err_s"]) <= TOLERANCE_S for r in rs]))}

    out = {"all": block(rows)}
    for m in sorted({r["meter"] for r in rows}):
        out[m] = block([r for r in rows if r["meter"] == m])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffariff.timing.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the rendered songs (reused when rerun)")
    p.add_argument("--songs", type=int, default=30)
    p.add_argument("--seconds", type=float, default=16.0)
    p.add_argument("--seed", type=int, default=2024, help="corpus seed of the evaluation songs")
    p.add_argument("--soundfont", default=None, help="render with this soundfont (default: each song's own)")
    p.add_argument("--report", type=Path, default=None, help="write the rows and summary as JSON here")
    args = p.parse_args(argv)
    result = evaluate(render_set(args.out, args.seed, args.songs, args.seconds, args.soundfont))
    for r in result["songs"]:
        print(f"{r['song']} {r['meter']:>4} {r['tempo']:6.1f} -> {r['est_meter']:>4} {r['est_bpm']:6.1f}  "
              f"db_F {r['downbeat_f']:.2f} beat_F {r['beat_f']:.2f} first {r['first_downbeat_err_s']:+.3f} s "
              f"({r['style']})")
    print(json.dumps(result["summary"], indent=1))
    if args.report is not None:
        from ..fsutil import write_json_atomic

        write_json_atomic(args.report, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
