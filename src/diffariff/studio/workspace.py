"""Browser sessions: each has its own temporary folder, its track (lanes) and its candidates.

A track is N samples long at 48 kHz, fixed when it is started (from an uploaded mix, from uploaded
stems, from silence or from a saved zip). Every lane and candidate is float32 ``[2, N]``, stored as
a float WAV file in the browser session's folder (``lanes/<id>.wav``, ``candidates/<id>.wav``), so
the page can play the very file. The **context** of a generation is the mix of the audible lanes:
the soloed ones when any lane is soloed, else all lanes not muted; what you hear is what the model
hears.

:class:`Workspaces` hands out browser sessions by an unguessable id and removes the folder of one
idle for longer than ``idle_seconds`` (checked on each new session) and all of them at shutdown.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import load_audio, peak_limit, save_audio
from ..audio_input import SAMPLE_RATE
from .uploads import Limits, NotFound, StudioError

#: Candidates kept per browser session; older unkept ones are dropped first.
MAX_CANDIDATES_KEPT = 16
MIX_CEILING = 0.99


@dataclasses.dataclass
class Lane:
    """One lane of the track: ``origin`` is "mix", "stem", "generated" or "edited"; ``meta`` holds how
    it was made (prompt, seed, sampler, ...)."""

    id: str
    name: str
    origin: str
    muted: bool = False
    solo: bool = False
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    version: int = 1  # raised when an edit replaces the lane's audio (the page reloads it)

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Candidate:
    """A generated stem not yet kept: ``target`` is the lane an edit was made from (None for a new
    stem); ``job`` the job that made it."""

    id: str
    name: str
    job: str
    target: str | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Workspace:
    """One browser session's track. Thread-safe: HTTP handlers and the generation worker share it."""

    def __init__(self, sid: str, root: Path, limits: Limits):
        self.sid, self.root, self.limits = sid, root, limits
        self.lock = threading.RLock()
        self.samples: int | None = None
        self.lanes: list[Lane] = []
        self.candidates: list[Candidate] = []
        self.settings: dict[str, Any] = {}
        self.touched = time.monotonic()
        self._ids = itertools.count(1)
        for sub in ("lanes", "candidates", "uploads", "out"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------------ the track
    @property
    def seconds(self) -> float:
        return 0.0 if self.samples is None else self.samples / SAMPLE_RATE

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def reset(self, samples: int) -> None:
        """Start a new, empty track of ``samples`` samples (lanes and candidates are removed)."""
        if samples < 1:
            raise StudioError("the track must be longer than zero samples")
        if samples > self.limits.max_seconds * SAMPLE_RATE + 0.5:
            raise StudioError(f"{samples / SAMPLE_RATE:.1f} s is longer than the limit of "
                              f"{self.limits.max_seconds:g} s")
        with self.lock:
            for sub in ("lanes", "candidates"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
                (self.root / sub).mkdir()
            self.samples, self.lanes, self.candidates = int(samples), [], []

    def require_track(self) -> int:
        if self.samples is None:
            raise StudioError("start a track first: upload a mix or stems, or start from silence")
        return self.samples

    # ------------------------------------------------------------------------------------- lanes
    def _path(self, kind: str, item_id: str) -> Path:
        return self.root / kind / f"{item_id}.wav"

    def add_lane(self, name: str, audio: np.ndarray, origin: str, meta: dict | None = None,
                 *, muted: bool = False, solo: bool = False) -> Lane:
        """Add ``audio`` float32 [2, N] (N = the track's length) as a new lane."""
        n = self.require_track()
        if audio.shape != (2, n):
            raise StudioError(f"a lane must be stereo and {n} samples long, got shape {tuple(audio.shape)}")
        with self.lock:
            if len(self.lanes) >= self.limits.max_lanes:
                raise StudioError(f"a track holds at most {self.limits.max_lanes} lanes; delete one first")
            lane = Lane(self._new_id("L"), name.strip()[:80] or "lane", origin, muted, solo, dict(meta or {}))
            save_audio(self._path("lanes", lane.id), audio, SAMPLE_RATE, subtype="float")
            self.lanes.append(lane)
            return lane

    def lane(self, lane_id: str) -> Lane:
        with self.lock:
            for lane in self.lanes:
                if lane.id == lane_id:
                    return lane
        raise NotFound(f"no lane '{lane_id}' in this track")

    def lane_path(self, lane_id: str) -> Path:
        return self._path("lanes", self.lane(lane_id).id)

    def lane_audio(self, lane_id: str) -> np.ndarray:
        """float32 [2, N] of a lane."""
        return load_audio(self.lane_path(lane_id), max_seconds=None)[0]

    def update_lane(self, lane_id: str, *, name: str | None = None, muted: bool | None = None,
                    solo: bool | None = None) -> Lane:
        with self.lock:
            lane = self.lane(lane_id)
            if name is not None and name.strip():
                lane.name = name.strip()[:80]
            if muted is not None:
                lane.muted = bool(muted)
            if solo is not None:
                lane.solo = bool(solo)
            return lane

    def delete_lane(self, lane_id: str) -> None:
        with self.lock:
            lane = self.lane(lane_id)
            self.lanes.remove(lane)
            self._path("lanes", lane.id).unlink(missing_ok=True)

    def audible(self, exclude: str | None = None) -> list[Lane]:
        """The lanes heard (and given to the model as context): soloed ones if any, else not muted."""
        with self.lock:
            lanes = [ln for ln in self.lanes if ln.id != exclude]
        soloed = [ln for ln in lanes if ln.solo]
        return soloed if soloed else [ln for ln in lanes if not ln.muted]

    def context(self, exclude: str | None = None) -> np.ndarray:
        """The mix of the audible lanes (without lane ``exclude``), float32 [2, N], peak-limited to
        0.99; silence when no lane is audible."""
        n = self.require_track()
        total = np.zeros((2, n), dtype=np.float64)
        for lane in self.audible(exclude):
            total += self.lane_audio(lane.id)
        return peak_limit(total.astype(np.float32), MIX_CEILING)

    # -------------------------------------------------------------------------------- candidates
    def add_candidates(self, stems: np.ndarray, names: list[str], job: str, target: str | None,
                       metas: list[dict]) -> list[Candidate]:
        """Store generated stems float32 [k, 2, N] as candidates (oldest unkept ones beyond
        MAX_CANDIDATES_KEPT are dropped)."""
        out = []
        with self.lock:
            if self.samples is None or stems.shape[-1] != self.samples:
                raise StudioError("the track changed while this job ran; its result was dropped")
            for audio, name, meta in zip(stems, names, metas):
                cand = Candidate(self._new_id("C"), name, job, target, dict(meta))
                save_audio(self._path("candidates", cand.id), audio, SAMPLE_RATE, subtype="float")
                self.candidates.append(cand)
                out.append(cand)
            while len(self.candidates) > MAX_CANDIDATES_KEPT:
                self.discard(self.candidates[0].id)
        return out

    def candidate(self, cand_id: str) -> Candidate:
        with self.lock:
            for cand in self.candidates:
                if cand.id == cand_id:
                    return cand
        raise NotFound(f"no candidate '{cand_id}' (it was kept or discarded)")

    def candidate_path(self, cand_id: str) -> Path:
        return self._path("candidates", self.candidate(cand_id).id)

    def keep(self, cand_id: str, *, replace: bool = False, name: str | None = None) -> Lane:
        """Make a candidate a lane: a new one, or (``replace``, for an edit) the lane it was made from.
        Every other candidate of the same job is discarded."""
        with self.lock:
            cand = self.candidate(cand_id)
            audio = load_audio(self._path("candidates", cand.id), max_seconds=None)[0]
            if replace:
                if cand.target is None:
                    raise StudioError("this candidate is a new stem; keep it as a new lane")
                lane = self.lane(cand.target)
                save_audio(self._path("lanes", lane.id), audio, SAMPLE_RATE, subtype="float")
                lane.origin, lane.meta, lane.version = "edited", dict(cand.meta), lane.version + 1
            else:
                origin = "generated" if cand.target is None else "edited"
                lane = self.add_lane(name or cand.name, audio, origin, cand.meta)
            for other in [c for c in self.candidates if c.job == cand.job]:
                self.discard(other.id)
            return lane

    def discard(self, cand_id: str | None = None) -> None:
        """Discard one candidate, or all of them (None)."""
        with self.lock:
            drop = list(self.candidates) if cand_id is None else [self.candidate(cand_id)]
            for cand in drop:
                self.candidates.remove(cand)
                self._path("candidates", cand.id).unlink(missing_ok=True)

    # --------------------------------------------------------------------------------- the page
    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"session": self.sid, "samples": self.samples, "seconds": self.seconds,
                    "sample_rate": SAMPLE_RATE, "lanes": [ln.public() for ln in self.lanes],
                    "candidates": [c.public() for c in self.candidates], "settings": dict(self.settings)}

    def out_path(self, name: str) -> Path:
        """A fresh path in the browser session's output folder (downloads are written there)."""
        folder = self.root / "out" / secrets.token_hex(4)
        folder.mkdir(parents=True)
        return folder / name

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Workspaces:
    """All browser sessions of one server, each in ``base/<id>/``; ``base`` is a fresh temporary
    folder removed by :meth:`close_all`."""

    def __init__(self, limits: Limits, *, idle_seconds: float = 6 * 3600.0, max_sessions: int = 32):
        self.limits, self.idle_seconds, self.max_sessions = limits, idle_seconds, max_sessions
        self.base = Path(tempfile.mkdtemp(prefix="diffariff-studio-"))
        self._items: dict[str, Workspace] = {}
        self._lock = threading.Lock()

    def create(self) -> Workspace:
        self.expire()
        with self._lock:
            if len(self._items) >= self.max_sessions:
                oldest = min(self._items.values(), key=lambda w: w.touched)
                self._items.pop(oldest.sid).close()
            sid = secrets.token_urlsafe(16)
            ws = Workspace(sid, self.base / sid, self.limits)
            self._items[sid] = ws
            return ws

    def get(self, sid: str) -> Workspace:
        with self._lock:
            ws = self._items.get(sid)
        if ws is None:
            raise NotFound("this browser session has expired or the server restarted; reload the page")
        ws.touched = time.monotonic()
        return ws

    def expire(self) -> None:
        """Remove the browser sessions idle for longer than ``idle_seconds``."""
        now = time.monotonic()
        with self._lock:
            old = [sid for sid, w in self._items.items() if now - w.touched > self.idle_seconds]
            for sid in old:
                self._items.pop(sid).close()

    def close_all(self) -> None:
        with self._lock:
            for ws in self._items.values():
                ws.close()
            self._items.clear()
        shutil.rmtree(self.base, ignore_errors=True)
