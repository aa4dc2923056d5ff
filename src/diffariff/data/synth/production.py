"""Production: turn rendered stems into a producer's session; the mixture stays the exact sum of the stems.

:func:`produce_song` gives every stem a random but plausible chain chosen by its role (and GM family),
places it in a stereo field, balances it, sends it to one reverb room shared by the song, and then
runs the song through bus dynamics towards a drawn loudness target. The stages, in order:

**Per stem** (the stem is first trimmed to :data:`WORK_LEVEL_DB` active RMS, so drive amounts and
compressor thresholds mean the same whatever level it arrived at):

1. *source* (optional): an amp, i.e. ``Distortion`` (tanh drive) followed by a cabinet (two
   first-order low-passes and, for guitars, a resonant peak), or plain saturation on drums; then the
   stem is trimmed again;
2. *inserts*: EQ (a high-pass of order 1 or 2 on every part: a subsonic one for drums and bass,
   70-300 Hz elsewhere; optional low shelf, mud cut, presence peak, air shelf), a soft clipper on
   most drum kits, ``Compressor``, optional ``Chorus`` (mostly pads and keys) and ``Delay`` (mostly
   leads; tempo-synced when the tempo is known). The ranges per role are in ``_RECIPES``;
3. *stereo*: mid/side width, then a constant-power (sin/cos, -3 dB at centre) pan;
4. *fader*: the stem's active RMS is set to its role's balance (:data:`ROLE_BALANCE_DB`) plus a
   random offset;
5. *reverb send*: the stem, scaled by its send, pre-delayed and band-limited, through the song's
   room (``Reverb``, Freeverb, fully wet). The room is linear, so each stem carries its own return
   (as a printed stem with its send would) and the sum of the returns is the room of the mix.
   The send is expressed as ``send_db``: the level of the return relative to the dry stem for steady
   broadband sound (the room's gain is measured once per song on noise).

**Bus** (the mix dynamics are non-linear, so they are computed once on the summed mix and the same
gain curve is applied to every stem; the mixture is then the sum of the processed stems):

* a glue compressor of our own (:func:`compressor_gain`): a stereo-linked 10 ms RMS detector, a
  soft-knee static curve, attack/release smoothing of the gain reduction in dB;
* a look-ahead peak limiter of our own (:func:`limiter_gain`) whose gain is provably at most the gain
  each sample needs to keep the mix under its ceiling *and every stem* under :data:`STEM_CEILING`;
* the song gain in front of both is searched (regula falsi; the limiter's release shortens when the
  target needs it, see :func:`_bus`) so that the mixture's integrated loudness (ITU-R BS.1770, a
  vectorised meter; the description reports pyloudnorm's reading) lands on the drawn target
  (:data:`LOUDNESS_RANGE`);
* a short fade-out at the end (reverb and delay tails are cut at the song's length).

Everything random comes from the ``rng`` given, in a fixed order (song-level draws, then stems in
sorted name order), and every drawn value is rounded before it is used, so the description
returned is exactly what was applied. Silent stems (all zeros) stay exactly zero; near-silent
stems (below :data:`BYPASS_DB`) skip the chain and only receive the bus gain.
"""

from __future__ import annotations

import math

import numpy as np
import pedalboard

from ...errors import InputError
from .dynamics import compressor_gain, fast_loudness_lufs, limiter_gain, loudness_lufs

#: Version of the description :func:`produce_song` returns (``metadata.json`` key ``production``).
PRODUCTION_VERSION = 1
#: Active RMS (dBFS) every stem is trimmed to before its source and insert stages.
WORK_LEVEL_DB = -18.0
#: A stem whose active RMS is below this (dBFS) is bypassed: no chain and no reverb, only the bus gain.
BYPASS_DB = -70.0
#: Balance at the fader: active RMS per role (dBFS), before the song's loudness gain.
ROLE_BALANCE_DB = {"drums": -14.0, "bass": -16.0, "chords": -19.0, "pad": -22.0, "arpeggio": -21.0,
                   "lead": -17.0, "counter-melody": -20.0}
#: Random balance offset per stem: normal with this deviation (dB), clipped to +-BALANCE_LIMIT_DB.
BALANCE_SPREAD_DB, BALANCE_LIMIT_DB = 2.0, 5.0
#: Integrated loudness targets (LUFS) a song draws from, uniformly: quiet acoustic sessions to loud masters.
LOUDNESS_RANGE = (-20.0, -9.0)
#: Mixture ceiling range (dBFS) of the limiter, and the ceiling every single stem is held under (linear).
CEILING_DB_RANGE = (-1.5, -0.3)
STEM_CEILING = 0.985
#: Fade-out at the end of every processed stem (seconds).
FADE_SECONDS = 0.05
#: Shortest audio accepted (seconds): the loudness meter needs one 400 ms block.
MIN_SECONDS = 0.5
#: Loudness search: tolerance (LU); the most song gain it may add over the gain that would reach the
#: target without processing (dB), which bounds the limiting; the shortest release the limiter's
#: auto-release may fall to (ms).
LOUDNESS_TOLERANCE, SEARCH_DB, MIN_RELEASE_MS = 0.1, 15.0, 5.0
#: The release is shortened until ``low + SEARCH_DB`` overshoots the target by this much (LU), so that
#: the gain found is not at the edge of the search (the deepest limiting).
RELEASE_MARGIN_LU = 1.0

#: pedalboard plugins a chain may name (``type`` of a chain entry).
PLUGINS = ("HighpassFilter", "LowpassFilter", "LowShelfFilter", "HighShelfFilter", "PeakFilter",
           "Compressor", "Distortion", "Chorus", "Delay", "Reverb", "Gain")

# Per-role recipe: ranges are (low, high) of a uniform draw; *_p is the chance a stage is used.
_RECIPES: dict[str, dict] = {
    "drums": dict(hp=(25, 45), hp_order=2, shelf_p=0.6, drive_p=0.1, drive=(2, 8),
                  comp_p=1.0, thr=(-24, -12), ratio=(2, 5), att=(1, 15), rel=(50, 250),
                  chorus_p=0.0, delay_p=0.0, width=(0.8, 1.2), send_p=1.0, send=(-24, -12)),
    "bass": dict(hp=(25, 40), hp_order=2, shelf_p=0.6, drive_p=0.2, drive=(4, 12),
                 comp_p=1.0, thr=(-24, -14), ratio=(2.5, 6), att=(2, 20), rel=(60, 250),
                 chorus_p=0.05, delay_p=0.0, width=(0.0, 0.5), send_p=0.4, send=(-30, -20)),
    "chords": dict(hp=(70, 200), hp_order=2, shelf_p=0.3, drive_p=0.05, drive=(3, 10),
                   comp_p=0.7, thr=(-22, -12), ratio=(1.5, 4), att=(5, 30), rel=(80, 300),
                   chorus_p=0.25, delay_p=0.1, width=(0.7, 1.3), send_p=1.0, send=(-18, -9)),
    "pad": dict(hp=(90, 250), hp_order=2, shelf_p=0.3, drive_p=0.0, drive=(2, 6),
                comp_p=0.4, thr=(-24, -14), ratio=(1.5, 3), att=(10, 50), rel=(150, 500),
                chorus_p=0.5, delay_p=0.1, width=(1.0, 1.5), send_p=1.0, send=(-14, -5)),
    "arpeggio": dict(hp=(120, 300), hp_order=2, shelf_p=0.2, drive_p=0.1, drive=(3, 10),
                     comp_p=0.6, thr=(-22, -12), ratio=(1.5, 4), att=(3, 20), rel=(60, 250),
                     chorus_p=0.2, delay_p=0.3, width=(0.8, 1.4), send_p=1.0, send=(-18, -9)),
    "lead": dict(hp=(100, 250), hp_order=2, shelf_p=0.2, drive_p=0.3, drive=(6, 18),
                 comp_p=0.9, thr=(-22, -12), ratio=(2, 5), att=(2, 15), rel=(50, 200),
                 chorus_p=0.1, delay_p=0.5, width=(0.5, 1.1), send_p=1.0, send=(-18, -8)),
    "counter-melody": dict(hp=(100, 250), hp_order=2, shelf_p=0.2, drive_p=0.15, drive=(3, 12),
                           comp_p=0.8, thr=(-22, -12), ratio=(2, 4), att=(2, 20), rel=(50, 250),
                           chorus_p=0.15, delay_p=0.35, width=(0.6, 1.2), send_p=1.0, send=(-18, -9)),
}
#: GM families that take chorus more often (keys, pads, clean guitars) and the chance they do.
_CHORUS_FAMILIES = {"piano": 0.35, "organ": 0.4, "synth pad": 0.5, "ensemble": 0.35, "strings": 0.3,
                    "guitar": 0.3, "chromatic percussion": 0.3}
#: Delay lengths in beats when the tempo is known: eighth, dotted eighth, quarter, quarter triplet.
_DELAY_BEATS = (0.5, 0.75, 1.0, 2.0 / 3.0)


def _u(rng: np.random.Generator, lo: float, hi: float, digits: int = 2) -> float:
    return round(float(rng.uniform(lo, hi)), digits)


def _chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def _db(x: float) -> float:
    return 20.0 * math.log10(max(x, 1e-12))


def active_level_db(audio: np.ndarray, frame: int = 2048, floor_db: float = 40.0) -> float:
    """Power (dBFS, mean over channels) over the frames within ``floor_db`` of the loudest one: the level
    of a part while it plays. ``-inf`` for silence."""
    power = np.mean(np.square(audio, dtype=np.float64), axis=0)
    n = power.size // frame
    frames = power[: n * frame].reshape(n, frame).mean(axis=1) if n else np.array([power.mean()])
    top = float(frames.max()) if frames.size else 0.0
    if top <= 0.0:
        return -math.inf
    return 10.0 * math.log10(float(frames[frames >= top * 10 ** (-floor_db / 10)].mean()))


# ---------------------------------------------------------------------------------------------- drawing


def _filter(kind: str, purpose: str, **params: float) -> dict:
    return {"type": kind, "purpose": purpose, **params}


def _draw_stem(rng: np.random.Generator, role: str, family: str, tempo: float | None,
               pan: float | None) -> dict:
    """A stem's chain description (parameters drawn; measured gains are filled in when applied)."""
    r = _RECIPES[role]
    source: list[dict] = []
    drive_p = max(r["drive_p"], 0.5) if family == "guitar" else r["drive_p"]
    driven = _chance(rng, drive_p)
    if driven and role == "drums":  # saturation, no cabinet
        source.append({"type": "Distortion", "purpose": "saturation", "drive_db": _u(rng, *r["drive"], 1)})
    elif driven:
        drive = r["drive"] if family != "guitar" else (8, 28)
        source.append({"type": "Distortion", "purpose": "amp", "drive_db": _u(rng, *drive, 1)})
        cab = (3500, 7000) if family == "guitar" else ((2000, 5000) if role == "bass" else (5000, 12000))
        cut = _u(rng, *cab, 0)
        source += [_filter("LowpassFilter", "cabinet", cutoff_frequency_hz=cut) for _ in range(2)]
        if family == "guitar":
            source.append(_filter("PeakFilter", "cabinet resonance",
                                  cutoff_frequency_hz=_u(rng, 1500, 3500, 0), gain_db=_u(rng, 0, 4, 1),
                                  q=_u(rng, 0.7, 2.0)))
    inserts: list[dict] = []
    order = r["hp_order"] if _chance(rng, 0.8) else 1
    cutoff = _u(rng, *r["hp"], 0)
    inserts += [_filter("HighpassFilter", "high-pass", cutoff_frequency_hz=cutoff) for _ in range(order)]
    if _chance(rng, r["shelf_p"]):
        gain = (-2, 4) if role in ("drums", "bass") else (-4, 1)
        inserts.append(_filter("LowShelfFilter", "low shelf", cutoff_frequency_hz=_u(rng, 60, 150, 0),
                               gain_db=_u(rng, *gain, 1), q=0.707))
    if _chance(rng, 0.6):
        inserts.append(_filter("PeakFilter", "mud cut", cutoff_frequency_hz=_u(rng, 200, 500, 0),
                               gain_db=_u(rng, -5, -1, 1), q=_u(rng, 0.7, 2.0)))
    if _chance(rng, 0.6):
        inserts.append(_filter("PeakFilter", "presence", cutoff_frequency_hz=_u(rng, 1500, 5000, 0),
                               gain_db=_u(rng, -3, 4, 1), q=_u(rng, 0.5, 1.5)))
    if _chance(rng, 0.5):
        inserts.append(_filter("HighShelfFilter", "air", cutoff_frequency_hz=_u(rng, 6000, 12000, 0),
                               gain_db=_u(rng, -4, 4, 1), q=0.707))
    if role == "drums" and _chance(rng, 0.7):
        # a soft clipper for the kit's peaks: tanh(x * 10^(drive/20)) with drive <= 0 dB, then the gain
        # put back; it rounds off the transients (peaks near 0 dBFS at the working level) by a few dB
        drive = _u(rng, -6.0, 0.0, 1)
        inserts += [{"type": "Distortion", "purpose": "soft clip", "drive_db": drive},
                    {"type": "Gain", "purpose": "soft clip makeup", "gain_db": -drive}]
    if _chance(rng, r["comp_p"]):
        inserts.append({"type": "Compressor", "purpose": "compressor", "threshold_db": _u(rng, *r["thr"], 1),
                        "ratio": _u(rng, *r["ratio"]), "attack_ms": _u(rng, *r["att"], 1),
                        "release_ms": _u(rng, *r["rel"], 0)})
    chorus_p = max(r["chorus_p"], _CHORUS_FAMILIES.get(family, 0.0)) if role != "drums" else 0.0
    if _chance(rng, chorus_p):
        inserts.append({"type": "Chorus", "purpose": "chorus", "rate_hz": _u(rng, 0.2, 1.5),
                        "depth": _u(rng, 0.1, 0.35), "centre_delay_ms": _u(rng, 5, 12, 1),
                        "feedback": _u(rng, 0.0, 0.2), "mix": _u(rng, 0.2, 0.5)})
    if _chance(rng, r["delay_p"]):
        if tempo:
            seconds = min(1.0, _DELAY_BEATS[int(rng.integers(len(_DELAY_BEATS)))] * 60.0 / float(tempo))
            seconds = round(seconds, 4)
        else:
            seconds = _u(rng, 0.18, 0.45, 3)
        inserts.append({"type": "Delay", "purpose": "delay", "delay_seconds": seconds,
                        "feedback": _u(rng, 0.1, 0.45), "mix": _u(rng, 0.08, 0.25)})
    if pan is None:
        pan = 0.0 if role in ("drums", "bass") else float(np.clip(rng.normal(0.0, 0.35), -0.8, 0.8))
    pan = round(float(np.clip(pan, -1.0, 1.0)), 3)
    balance = float(np.clip(rng.normal(0.0, BALANCE_SPREAD_DB), -BALANCE_LIMIT_DB, BALANCE_LIMIT_DB))
    send = _u(rng, *r["send"], 1) if _chance(rng, r["send_p"]) else None
    return {"role": role, "family": family, "source": source, "inserts": inserts,
            "width": _u(rng, *r["width"]), "pan": pan, "pan_law": "constant power, -3 dB centre",
            "balance_db": round(ROLE_BALANCE_DB[role] + balance, 2), "send_db": send}


def _draw_song(rng: np.random.Generator) -> tuple[dict, dict]:
    """The song's room and bus (parameters drawn)."""
    room = {"type": "Reverb", "room_size": _u(rng, 0.25, 0.85), "damping": _u(rng, 0.2, 0.7),
            "width": _u(rng, 0.6, 1.0), "predelay_ms": _u(rng, 0.0, 40.0, 1),
            "return_highpass_hz": _u(rng, 150, 400, 0), "return_lowpass_hz": _u(rng, 5000, 12000, 0)}
    target = _u(rng, *LOUDNESS_RANGE, 1)
    bus = {"target_lufs": target,
           "compressor": {"threshold_lu": _u(rng, -6.0, 2.0, 1), "ratio": _u(rng, 1.5, 4.0),
                          "knee_db": _u(rng, 3.0, 9.0, 1), "attack_ms": _u(rng, 5.0, 30.0, 1),
                          "release_ms": _u(rng, 80.0, 400.0, 0)},
           "limiter": {"ceiling_db": _u(rng, *CEILING_DB_RANGE), "stem_ceiling": STEM_CEILING,
                       "attack_ms": _u(rng, 1.0, 5.0), "release_ms": _u(rng, 30.0, 200.0, 0)}}
    return room, bus


# ------------------------------------------------------------------------------------------- applying


def _plugin(entry: dict) -> pedalboard.Plugin:
    if entry["type"] not in PLUGINS:
        raise InputError(f"unknown effect '{entry['type']}' in a production chain")
    params = {k: v for k, v in entry.items() if k not in ("type", "purpose")}
    return getattr(pedalboard, entry["type"])(**params)


def _run(chain: list[dict], audio: np.ndarray, sample_rate: int) -> np.ndarray:
    if not chain:
        return audio
    board = pedalboard.Pedalboard([_plugin(e) for e in chain])
    return board(np.ascontiguousarray(audio, dtype=np.float32), sample_rate)


def _stereo(audio: np.ndarray, width: float, pan: float) -> np.ndarray:
    """Mid/side width (side scaled by ``width``), then constant-power pan: gains cos/sin of
    (pan + 1) x pi/4 on left/right, each 1/sqrt(2) at centre."""
    mid = 0.5 * (audio[0] + audio[1])
    side = 0.5 * (audio[0] - audio[1]) * np.float32(width)
    theta = (pan + 1.0) * math.pi / 4.0
    return np.stack([(mid + side) * np.float32(math.cos(theta)),
                     (mid - side) * np.float32(math.sin(theta))]).astype(np.float32)


def _room_chain(room: dict) -> list[dict]:
    """The return's chain: a 2nd-order high-pass, a low-pass and the fully wet Freeverb."""
    cut = room["return_highpass_hz"]
    return [_filter("HighpassFilter", "return", cutoff_frequency_hz=cut) for _ in range(2)] + [
        _filter("LowpassFilter", "return", cutoff_frequency_hz=room["return_lowpass_hz"]),
        {"type": "Reverb", "room_size": room["room_size"], "damping": room["damping"], "width": room["width"],
         "wet_level": 1.0, "dry_level": 0.0}]


def _room_return(audio: np.ndarray, room: dict, gain_db: float, sample_rate: int) -> np.ndarray:
    """The room's return for ``audio`` sent at ``gain_db`` (pre-delay, band-limit, fully wet reverb)."""
    delay = int(round(room["predelay_ms"] * 1e-3 * sample_rate))
    send = np.zeros_like(audio)
    if delay < audio.shape[1]:
        send[:, delay:] = audio[:, : audio.shape[1] - delay] * np.float32(10 ** (gain_db / 20))
    return _run(_room_chain(room), send, sample_rate)


def _room_gain_db(room: dict, sample_rate: int) -> float:
    """Level of the room's return relative to its input for steady stereo noise (the last second of two)."""
    noise = np.random.default_rng(0).standard_normal((2, 2 * sample_rate)).astype(np.float32) * 0.1
    wet = _room_return(noise, {**room, "predelay_ms": 0.0}, 0.0, sample_rate)[:, sample_rate:]
    return 10.0 * math.log10(float(np.mean(np.square(wet, dtype=np.float64))) /
                             float(np.mean(np.square(noise[:, sample_rate:], dtype=np.float64))))


def _apply_stem(audio: np.ndarray, desc: dict, room: dict, room_gain_db: float,
                sample_rate: int) -> np.ndarray:
    """Run one stem through its drawn chain; fills the measured gains into ``desc``."""
    level = active_level_db(audio)
    if not level > BYPASS_DB:
        desc["bypassed"] = True
        return audio
    desc["bypassed"] = False
    desc["input_trim_db"] = round(WORK_LEVEL_DB - level, 2)
    x = audio * np.float32(10 ** (desc["input_trim_db"] / 20))
    if desc["source"]:
        x = _run(desc["source"], x, sample_rate)
        desc["source_trim_db"] = round(WORK_LEVEL_DB - active_level_db(x), 2)
        x = x * np.float32(10 ** (desc["source_trim_db"] / 20))
    x = _run(desc["inserts"], x, sample_rate)
    x = _stereo(x, desc["width"], desc["pan"])
    after = active_level_db(x)  # a chain that all but silenced the stem does not get it boosted back
    fader = float(np.clip(desc["balance_db"] - after, -40.0, 40.0)) if math.isfinite(after) else 0.0
    desc["fader_db"] = round(fader, 2)
    x = x * np.float32(10 ** (desc["fader_db"] / 20))
    if desc["send_db"] is not None:
        x = x + _room_return(x, room, desc["send_db"] - room_gain_db, sample_rate)
    return x


# ------------------------------------------------------------------------------------------------ bus


def _bus(mix: np.ndarray, stem_peak: np.ndarray, bus: dict, sample_rate: int) -> tuple[np.ndarray, float]:
    """The bus gain curve (song gain x compressor x limiter) that brings ``mix`` to the target loudness,
    and the loudness reached. Fills the measured quantities into ``bus``.

    The loudness reached grows with the song gain, ever more slowly as the limiter works harder, up to
    a plateau set by its release (a fully limited mix rides its peak envelope). The song gain starts at
    ``low``, the gain that would reach the target without processing, and may add at most
    :data:`SEARCH_DB`; while ``low + SEARCH_DB`` does not pass the target by :data:`RELEASE_MARGIN_LU`,
    the limiter's release is halved (auto-release, down to :data:`MIN_RELEASE_MS`), which raises the
    loudness a given amount of limiting gives; at the shortest release the gain may go to
    ``low + 2 SEARCH_DB``. Then the gain is found by regula falsi (Illinois) between ``low`` (or a
    first step) and that bound. A target still out of reach is left unreached (the description's
    ``loudness_lufs`` says what was).
    """
    comp, lim = bus["compressor"], bus["limiter"]
    ceiling = 10 ** (lim["ceiling_db"] / 20)
    mix_peak = np.max(np.abs(mix), axis=0)
    start = fast_loudness_lufs(mix, sample_rate)
    target = bus["target_lufs"]

    def threshold(gain_db: float) -> float:
        """Follows the song gain, so the compressor's work does not depend on it."""
        return start + gain_db + comp["threshold_lu"] if math.isfinite(start) else 200.0  # no loudness: idle

    def run(gain_db: float, release_ms: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, float]:
        pre = 10 ** (gain_db / 20)
        c = compressor_gain(mix * pre, sample_rate, threshold(gain_db), comp["ratio"], comp["knee_db"],
                            comp["attack_ms"], comp["release_ms"])
        k = pre * c
        need = np.minimum(1.0, np.minimum(ceiling / np.maximum(mix_peak * k, 1e-12),
                                          STEM_CEILING / np.maximum(stem_peak * k, 1e-12)))
        li = limiter_gain(need, sample_rate, lim["attack_ms"], release_ms)
        return gain_db, c, li, k * li, fast_loudness_lufs(mix * (k * li), sample_rate)

    release = float(lim["release_ms"])
    if not math.isfinite(start):  # below the meter's absolute gate: no loudness to aim at, only the ceiling
        best = run(0.0, release)
    else:
        low = target - start  # processing only lowers the level, so this gain reaches the target at most
        best = run(low, release)
        if abs(best[-1] - target) > LOUDNESS_TOLERANCE:
            # the compressor's work does not depend on the song gain: without limiting this step lands
            step = run(low + target - best[-1], release)
            if abs(step[-1] - target) <= LOUDNESS_TOLERANCE:
                best = step
            elif step[-1] > target:
                best = _illinois(lambda g: run(g, release), target, best, step)
            else:
                top = run(low + SEARCH_DB, release)
                while top[-1] < target + RELEASE_MARGIN_LU and release > MIN_RELEASE_MS:
                    release = max(MIN_RELEASE_MS, release / 2.0)
                    top = run(low + SEARCH_DB, release)
                if top[-1] < target - LOUDNESS_TOLERANCE:  # last resort: twice the limiting
                    top = run(low + 2 * SEARCH_DB, release)
                if top[-1] < target - LOUDNESS_TOLERANCE:
                    best = top  # the loudest this material gets under the ceilings
                else:
                    if release != lim["release_ms"]:  # with a shorter release even the step may overshoot
                        step = run(low, release)
                    best = _illinois(lambda g: run(g, release), target, step, top)
    gain_db, c, li, total, reached = best
    bus["gain_db"] = round(gain_db, 3)
    comp["threshold_db"] = round(threshold(gain_db), 2)
    comp["mean_reduction_db"] = round(-_db(float(np.exp(np.mean(np.log(c))))), 2)
    comp["max_reduction_db"] = round(-_db(float(c.min())), 2)
    lim["release_used_ms"] = round(release, 2)
    lim["mean_reduction_db"] = round(-_db(float(np.exp(np.mean(np.log(li))))), 2)
    lim["max_reduction_db"] = round(-_db(float(li.min())), 2)
    return total, reached


def _illinois(run, target: float, low: tuple, high: tuple, steps: int = 16) -> tuple:
    """Regula falsi (Illinois variant) for the song gain: ``low`` and ``high`` are ``run`` results (gain
    first, loudness last) on either side of ``target``; returns the ``run`` result that lands within
    :data:`LOUDNESS_TOLERANCE` (or the closest one after ``steps``)."""
    if low[-1] > high[-1]:
        low, high = high, low
    a, fa = low[0], low[-1] - target
    b, fb = high[0], high[-1] - target
    best = min(low, high, key=lambda r: abs(r[-1] - target))
    if fa > 0 or fb < 0:  # not a bracket (cannot happen for a loudness that grows with the gain)
        return best
    side = 0
    for _ in range(steps):
        if abs(best[-1] - target) <= LOUDNESS_TOLERANCE:
            break
        g = (a + b) / 2.0 if fb == fa else b - fb * (b - a) / (fb - fa)
        res = run(g)
        f = res[-1] - target
        if abs(f) < abs(best[-1] - target):
            best = res
        if f < 0:
            a, fa = g, f
            if side == -1:
                fb /= 2.0
            side = -1
        else:
            b, fb = g, f
            if side == 1:
                fa /= 2.0
            side = 1
    return best


# ----------------------------------------------------------------------------------------------- entry


def produce_song(stems: dict[str, np.ndarray], roles: dict[str, str], rng: np.random.Generator,
                 sample_rate: int = 48000, families: dict[str, str] | None = None, *,
                 tempo: float | None = None, pans: dict[str, float] | None = None,
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Produce a song: ``(processed stems, mixture, description)``.

    ``stems``: ``float32 [2, N]`` per name (all the same N); ``roles``: each stem's role (one of
    :data:`ROLE_BALANCE_DB`); ``families``: optional GM family per stem (``guitar`` gets amps more
    often, keys and pads chorus); ``tempo`` (quarter notes per minute) syncs delays; ``pans`` fixes a
    stem's pan (-1..1) instead of drawing one. The mixture is the float32 sum of the returned stems;
    the description (JSON-able) holds every chain, the room and the bus with the parameters applied.
    """
    if not stems:
        raise InputError("produce_song needs at least one stem")
    names = sorted(stems)
    arrays = {k: np.asarray(stems[k], dtype=np.float32) for k in names}
    n = next(iter(arrays.values())).shape[-1]
    for k, a in arrays.items():
        if a.ndim != 2 or a.shape != (2, n):
            raise InputError(f"stem '{k}' must be [2, {n}] like the others, got {list(a.shape)}")
        if not np.all(np.isfinite(a)):
            raise InputError(f"stem '{k}' has non-finite samples")
        if roles.get(k) not in ROLE_BALANCE_DB:
            raise InputError(f"stem '{k}' has role {roles.get(k)!r}, expected one of "
                             f"{', '.join(ROLE_BALANCE_DB)}")
    if n < MIN_SECONDS * sample_rate:
        raise InputError(f"production needs at least {MIN_SECONDS:g} s of audio, got {n / sample_rate:.3f} s")
    families = families or {}
    room, bus = _draw_song(rng)
    descs = {k: _draw_stem(rng, roles[k], families.get(k, ""), tempo, (pans or {}).get(k)) for k in names}
    room_gain = _room_gain_db(room, sample_rate)
    room["gain_db"] = round(room_gain, 2)
    wet = {k: np.asarray(_apply_stem(arrays[k], descs[k], room, room_gain, sample_rate), dtype=np.float64)
           for k in names}
    mix = np.sum([wet[k] for k in names], axis=0)
    stem_peak = np.max([np.max(np.abs(wet[k]), axis=0) for k in names], axis=0)
    if np.any(mix != 0) or np.any(stem_peak != 0):
        gain, _ = _bus(mix, stem_peak, bus, sample_rate)
    else:
        gain = np.ones(n)
    fade = min(n, int(round(FADE_SECONDS * sample_rate)))
    gain[n - fade:] *= np.linspace(1.0, 0.0, fade)
    out = {k: (wet[k] * gain).astype(np.float32) for k in names}
    mixture = np.sum([out[k].astype(np.float64) for k in names], axis=0).astype(np.float32)
    loud = loudness_lufs(mixture, sample_rate)
    bus["loudness_lufs"] = round(loud, 2) if math.isfinite(loud) else None
    bus["peak"] = round(float(np.max(np.abs(mixture))), 4)
    bus["fade_out_seconds"] = FADE_SECONDS
    description = {"version": PRODUCTION_VERSION, "sample_rate": int(sample_rate), "room": room, "bus": bus,
                   "stems": descs}
    return {k: out[k] for k in stems}, mixture, description
