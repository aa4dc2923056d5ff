"""Fit the weights of the bar hypotheses' features (:data:`diffariff.timing.meter.FEATURES`) on rendered
corpus songs, whose metadata gives the true tempo, meter and downbeats (bar 1 at t = 0).

For every song the tracker's hypotheses are scored as usual; a hypothesis is *right* when its meter is
the song's, its tempo within 4 % and its downbeat within 70 ms of a true one. The weights maximise the
mean log-probability of the right hypotheses under a softmax over each song's hypotheses (L2 penalty
``l2``); songs with no right hypothesis (the beat tracker failed) are left out. Run::

    python -m diffariff.timing.fit --songs /tmp/timing_train --write

(render the songs first, e.g. ``python -m diffariff.timing.evaluate --out /tmp/timing_train --seed 12
--songs 90``); ``--write`` stores the weights in ``meter_weights.json`` beside :mod:`.meter`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import meter as meter_mod
from .evaluate import TOLERANCE_S, true_grid
from .tempo import onset_features, to_mono_analysis, track_beats


def song_candidates(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(features [H, F], right [H] bool) of one song's hypotheses; None when none is right."""
    from ..audio import load_audio

    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    audio, sr = load_audio(folder / meta["mixture"])
    feats = onset_features(to_mono_analysis(audio, sr))
    cands = meter_mod.choose_bars(feats, track_beats(feats)).candidates
    ref = true_grid(meta)
    x = np.array([[c["features"][f] for f in meter_mod.FEATURES] for c in cands])
    right = np.array([c["meter"] == ref.meter and abs(c["bpm"] / ref.bpm - 1) <= 0.04
                      and abs((c["downbeat_s"] + ref.bar_seconds / 2) % ref.bar_seconds - ref.bar_seconds / 2)
                      <= TOLERANCE_S for c in cands])
    return (x, right) if right.any() else None


def fit(songs: list[tuple[np.ndarray, np.ndarray]], l2: float = 0.01) -> np.ndarray:
    """Weights [F] maximising the mean log-probability of the right hypotheses (module doc)."""
    from scipy.optimize import minimize

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = l2 * float(w @ w), 2 * l2 * w
        for x, right in songs:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            pr = p * right
            total -= np.log(pr.sum() + 1e-12) / len(songs)
            grad -= ((pr / (pr.sum() + 1e-12)) @ x - p @ x) / len(songs)
        return total, grad

    w0 = np.array([meter_mod.WEIGHTS[f] for f in meter_mod.FEATURES])
    return minimize(loss, w0, jac=True, method="L-BFGS-B").x


def top1(songs: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray) -> float:
    """Fraction of songs whose best-scored hypothesis is right."""
    return float(np.mean([right[int(np.argmax(x @ w))] for x, right in songs]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffariff.timing.fit", description=__doc__.split("\n")[0])
    p.add_argument("--songs", type=Path, required=True, help="folder of rendered corpus songs (song_*/)")
    p.add_argument("--l2", type=float, default=0.01)
    p.add_argument("--write", action="store_true", help="store the weights beside diffariff.timing.meter")
    args = p.parse_args(argv)
    folders = sorted(f for f in args.songs.glob("song_*") if (f / "metadata.json").is_file())
    rows = [song_candidates(f) for f in folders]
    songs = [r for r in rows if r is not None]
    w0 = np.array([meter_mod.WEIGHTS[f] for f in meter_mod.FEATURES])
    w = fit(songs, args.l2)
    print(f"{len(songs)} of {len(folders)} songs have a right hypothesis; top-1 right: "
          f"{top1(songs, w0):.3f} with the current weights, {top1(songs, w):.3f} fitted")
    weights = {f: round(float(v), 4) for f, v in zip(meter_mod.FEATURES, w)}
    print(json.dumps(weights))
    if args.write:
        from ..fsutil import write_json_atomic

        write_json_atomic(meter_mod.WEIGHTS_FILE, {"weights": weights, "songs": str(args.songs),
                                                   "n_songs": len(songs), "l2": args.l2,
                                                   "train_top1": round(top1(songs, w), 4)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
