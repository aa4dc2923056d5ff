"""A browser session as a zip file, and back.

Layout of a session zip::

    session.json         {"format": "diffariff-studio-session", "version": 1, "sample_rate": 48000,
                          "samples": N, "lanes": [{"name", "origin", "muted", "solo", "meta",
                          "file"}], "settings": {...}}   (lanes in timeline order)
    lanes/01_<name>.flac  one 24-bit stereo FLAC per lane, N samples at 48 kHz

Opening reads only the members that ``session.json`` names (nothing is extracted by its own path),
checks each as an upload (audio, length, no NaN) and refuses anything else with one line.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

from ..audio import save_audio
from ..audio_input import SAMPLE_RATE
from .uploads import StudioError, fit_length, one_line, read_upload
from .workspace import Workspace

FORMAT = "diffariff-studio-session"
VERSION = 1
MANIFEST = "session.json"
#: Largest session.json read (bytes).
MAX_MANIFEST_BYTES = 1 << 20


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "lane"


def write_session_zip(ws: Workspace, path: Path) -> Path:
    """Write the track of ``ws`` (its lanes and settings) to the zip ``path``."""
    samples = ws.require_track()
    with ws.lock:
        lanes = list(ws.lanes)
        settings = dict(ws.settings)
    entries = []
    scratch = path.parent / "lanes"
    scratch.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for k, lane in enumerate(lanes, 1):
            member = f"lanes/{k:02d}_{_slug(lane.name)}.flac"
            flac = save_audio(scratch / Path(member).name, ws.lane_audio(lane.id), SAMPLE_RATE, subtype="24")
            zf.write(flac, member)
            entries.append({"name": lane.name, "origin": lane.origin, "muted": lane.muted, "solo": lane.solo,
                            "meta": lane.meta, "file": member})
        manifest = {"format": FORMAT, "version": VERSION, "sample_rate": SAMPLE_RATE, "samples": samples,
                    "lanes": entries, "settings": settings}
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2))
    return path


def _manifest(zf: zipfile.ZipFile, shown: str) -> dict[str, Any]:
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        raise StudioError(f"{shown} is not a diffariff studio session (it has no {MANIFEST})") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise StudioError(f"{shown}: {MANIFEST} is too large")
    try:
        data = json.loads(zf.read(info).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StudioError(f"{shown}: {MANIFEST} is not valid JSON ({one_line(exc)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StudioError(f"{shown} is not a diffariff studio session (wrong format in {MANIFEST})")
    if data.get("version") != VERSION:
        raise StudioError(f"{shown}: session version {data.get('version')} is not supported (expected {VERSION})")
    samples, lanes = data.get("samples"), data.get("lanes")
    if not isinstance(samples, int) or samples < 1 or not isinstance(lanes, list):
        raise StudioError(f"{shown}: {MANIFEST} lacks a valid 'samples' count or 'lanes' list")
    return data


def open_session_zip(ws: Workspace, path: Path, shown: str) -> list[str]:
    """Replace the track of ``ws`` with the session zip at ``path`` (``shown``: its name for
    messages). Returns one-line notes (e.g. a lane padded to the track's length)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise StudioError(f"{shown} is not a zip file (open a session saved by the studio)") from None
    notes: list[str] = []
    with zf:
        data = _manifest(zf, shown)
        samples = int(data["samples"])
        if samples > ws.limits.max_seconds * SAMPLE_RATE + 0.5:
            raise StudioError(f"{shown}: the track is {samples / SAMPLE_RATE:.1f} s long, longer than the limit of "
                              f"{ws.limits.max_seconds:g} s")
        entries = data["lanes"][: ws.limits.max_lanes]
        names = set(zf.namelist())
        loaded = []
        scratch = ws.root / "uploads" / "session"
        scratch.mkdir(parents=True, exist_ok=True)
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict) or entry.get("file") not in names:
                raise StudioError(f"{shown}: lane {k + 1} names no file of the zip")
            member = str(entry["file"])
            info = zf.getinfo(member)
            if info.file_size > ws.limits.max_upload_bytes:
                raise StudioError(f"{shown}: {member} is larger than the upload limit")
            target = scratch / f"lane_{k:02d}{Path(member).suffix.lower() or '.flac'}"
            target.write_bytes(zf.read(info))
            audio, warn = read_upload(target, f"{shown}:{member}", "lane", max_seconds=ws.limits.max_seconds)
            target.unlink(missing_ok=True)
            notes += warn
            if audio.shape[1] != samples:
                notes.append(f"{member} was {audio.shape[1]} samples long; fitted to the track's {samples}")
            loaded.append((entry, fit_length(audio, samples)))
    ws.reset(samples)
    for entry, audio in loaded:
        meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
        ws.add_lane(str(entry.get("name") or "lane"), audio, str(entry.get("origin") or "stem"), meta,
                    muted=bool(entry.get("muted")), solo=bool(entry.get("solo")))
    settings = data.get("settings")
    with ws.lock:
        ws.settings = dict(settings) if isinstance(settings, dict) else {}
    if len(data["lanes"]) > len(entries):
        notes.append(f"only the first {len(entries)} lanes were opened (the limit)")
    return notes
