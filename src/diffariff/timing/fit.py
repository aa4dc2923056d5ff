"""Fit the scorer of the bar hypotheses' features (:data:`diffariff.timing.meter.FEATURES`) on rendered
corpus songs, whose metadata gives the true tempo, meter and downbeats (bar 1 at t = 0).

For every song the hypotheses on every tracked grid are scored as usual; a hypothesis is *right* when its meter is
the song's, its tempo within 4 % and its downbeat within 70 ms of a true one. The scorer
(:mod:`diffariff.timing.scorer`, a linear part plus ``--hidden`` tanh units) maximises the mean
log-probability of the right hypotheses under a softmax over each song's hypotheses, plus
``--tempo-weight`` times that of the hypotheses with the right tempo (within 2 %, any meter or phase;
default 0: 0.5 and 1 were no better on the choice seeds), with an L2 penalty ``l2``; songs with no
right hypothesis (no tracked grid fits) are left out. Run::

    python -m diffariff.timing.fit --songs /tmp/timing_train12 /tmp/timing_train31 ... --write

(render the songs first, e.g. ``python -m diffariff.timing.evaluate --out /tmp/timing_train12 --seed 12
--songs 60``; the shipped scorer: seeds 12, 31, 45 and 101-108, 60 songs each, balanced over 4/4, 3/4
and 6/8, every style and its whole tempo range; settings chosen on seeds 77, 6, 7, 8, never on the
evaluation seed 2024); ``--write`` stores the scorer in ``meter_weights.json`` beside :mod:`.meter`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import meter as meter_mod
from .beats import candidate_grids, onset_features, to_mono_analysis
from .evaluate import TOLERANCE_S, true_grid
from .scorer import WEIGHTS_FILE, Scorer, fit_scorer


def song_candidates(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(features [H, F], right [H] bool, tempo within 2 % [H] bool) of one song's hypotheses; None when
    none is right."""
    from ..audio import load_audio

    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    audio, sr = load_audio(folder / meta["mixture"])
    feats = onset_features(to_mono_analysis(audio, sr))
    cands = meter_mod.choose_bars(feats, candidate_grids(feats)).candidates
    ref = true_grid(meta)
    x = np.array([[c["features"][f] for f in meter_mod.FEATURES] for c in cands])
    right = np.array([c["meter"] == ref.meter and abs(c["bpm"] / ref.bpm - 1) <= 0.04
                      and abs((c["downbeat_s"] + ref.bar_seconds / 2) % ref.bar_seconds - ref.bar_seconds / 2)
                      <= TOLERANCE_S for c in cands])
    tempo_ok = np.array([abs(c["bpm"] / ref.bpm - 1) <= 0.02 for c in cands])
    return (x, right, tempo_ok) if right.any() else None


def top1(songs: list[tuple[np.ndarray, ...]], scorer: Scorer) -> float:
    """Fraction of songs whose best-scored hypothesis is right."""
    return float(np.mean([s[1][int(np.argmax(scorer(s[0])))] for s in songs]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffariff.timing.fit", description=__doc__.split("\n")[0])
    p.add_argument("--songs", type=Path, nargs="+", required=True,
                   help="folders of rendered corpus songs (song_*/); never the evaluation seed's")
    p.add_argument("--hidden", type=int, default=8, help="hidden units of the scorer (0: linear)")
    p.add_argument("--l2", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0, help="seed of the initial hidden weights")
    p.add_argument("--tempo-weight", type=float, default=0.0,
                   help="weight of the right-tempo hypotheses' log-probability in the loss")
    p.add_argument("--write", action="store_true", help="store the scorer beside diffariff.timing.meter")
    args = p.parse_args(argv)
    folders = sorted(f for root in args.songs for f in root.glob("song_*") if (f / "metadata.json").is_file())
    rows = [song_candidates(f) for f in folders]
    songs = [r for r in rows if r is not None]
    scorer = fit_scorer(songs, meter_mod.FEATURES, args.hidden, args.l2, args.seed, tempo_weight=args.tempo_weight)
    print(f"{len(songs)} of {len(folders)} songs have a right hypothesis; top-1 right: "
          f"{top1(songs, meter_mod.SCORER):.3f} with the stored scorer, {top1(songs, scorer):.3f} fitted")
    if args.write:
        from ..fsutil import write_json_atomic

        write_json_atomic(WEIGHTS_FILE, {"scorer": scorer.to_json(), "songs": [str(s) for s in args.songs],
                                         "n_songs": len(songs), "hidden": args.hidden, "l2": args.l2,
                                         "seed": args.seed, "tempo_weight": args.tempo_weight, "train_top1": round(top1(songs, scorer), 4)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
