"""Shared inputs of the context-prior tests: the tiny CLAP config and 1-s crops of rendered phrases."""

from __future__ import annotations

import numpy as np

from diffariff.clap.builtin import ClapConfig

SR = 48_000
TINY_CLAP = ClapConfig(dim=32, n_mels=32, channels=(8, 16, 32), pool_dim=32, audio_hidden=64, text_hidden=64,
                       window_seconds=1.0)
#: name -> (GM program, drum kit?, two phrases of 8 notes)
PHRASES = {
    "bass": (33, False, [[36, 43, 41, 38, 36, 31, 33, 36], [40, 40, 43, 45, 28, 31, 33, 35]]),
    "piano": (0, False, [[60, 64, 67, 72, 67, 64, 60, 55], [72, 71, 69, 67, 65, 64, 62, 60]]),
    "drums": (0, True, [[36, 42, 38, 42, 36, 36, 38, 42], [36, 46, 38, 46, 36, 42, 38, 49]]),
}


def phrase_crops(render_notes, names) -> dict[str, list[np.ndarray]]:
    """For each of ``names`` (keys of :data:`PHRASES`): 16 stereo crops ``[2, 48000]`` (1 s), 8 per
    rendered 2-s phrase, starting every 1/7 s."""
    out = {}
    for name in names:
        program, drum, pitch_sets = PHRASES[name]
        clips = []
        for pitches in pitch_sets:
            audio = render_notes(program, pitches, drum=drum, seconds=2.0)
            clips += [audio[:, s:s + SR] for s in range(0, SR + 1, SR // 7)]
        out[name] = clips
    return out
