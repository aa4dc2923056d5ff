"""The JSON API handlers of the studio (listed in :mod:`.server`). Each is ``async fn(studio,
request)`` returning a dict (sent as JSON) or a file response; slow file and audio work runs in
Starlette's thread pool, model work in the job queue's worker thread."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from ..audio import save_audio
from ..audio_input import MIN_CONTEXT_SECONDS, MIN_REFERENCE_SECONDS, SAMPLE_RATE
from . import archive, engine, options
from .uploads import NotFound, StudioError, display_name, fit_length, read_upload, save_upload
from .workspace import Workspace

FORMATS = {"wav": "audio/wav", "flac": "audio/flac"}
MAX_SETTINGS_BYTES = 64 * 1024


def _ws(studio: Any, request: Request) -> Workspace:
    return studio.workspaces.get(request.path_params["sid"])


def _uploads(form: Any, name: str) -> list[Any]:
    """The non-empty file parts called ``name`` of a form."""
    return [f for f in form.getlist(name) if hasattr(f, "read") and getattr(f, "filename", "")]


async def _read_form(request: Request) -> Any:
    try:
        return await request.form(max_files=64, max_fields=200)
    except StudioError:
        raise
    except Exception as exc:  # a malformed multipart body
        raise StudioError(f"could not read the form ({type(exc).__name__})") from None


async def _audio_upload(ws: Workspace, upload: Any, what: str, min_seconds: float) -> tuple[Any, list[str]]:
    """An uploaded file -> (float32 [2, N] at 48 kHz, notes); the file is removed after reading."""
    path = await save_upload(upload, ws.root / "uploads", ws.limits.max_upload_bytes)
    try:
        return await run_in_threadpool(read_upload, path, display_name(upload), what,
                                       max_seconds=ws.limits.max_seconds, min_seconds=min_seconds)
    finally:
        path.unlink(missing_ok=True)


def _stem_name(upload: Any) -> str:
    name = Path(re.split(r"[\\/]", upload.filename or "stem")[-1]).stem
    return " ".join(name.replace("_", " ").split())[:80] or "stem"


def _state(studio: Any, ws: Workspace) -> dict:
    out = ws.state()
    out["jobs"] = [j.public(studio.jobs.position(j)) for j in studio.jobs.active(ws.sid)]
    return out


# ------------------------------------------------------------------------------------ the track
async def new_session(studio: Any, request: Request) -> dict:
    ws = studio.workspaces.create()
    return _state(studio, ws)


async def get_state(studio: Any, request: Request) -> dict:
    return _state(studio, _ws(studio, request))


async def start(studio: Any, request: Request) -> dict:
    """A new track: from one uploaded mix, from uploaded stems (padded to the longest), or silence."""
    ws = _ws(studio, request)
    form = await _read_form(request)
    mode = str(form.get("mode") or "")
    files = _uploads(form, "files")
    notes: list[str] = []
    if mode == "silence":
        seconds = options.number(form, "seconds", None, MIN_CONTEXT_SECONDS, ws.limits.max_seconds, "length (s)")
        if seconds is None:
            raise StudioError("give the length of the silent track in seconds")
        ws.reset(int(round(seconds * SAMPLE_RATE)))
    elif mode in ("mix", "stems"):
        if not files:
            raise StudioError(f"choose {'a mix' if mode == 'mix' else 'one or more stems'} to upload")
        if mode == "mix" and len(files) > 1:
            raise StudioError("upload one mix (or choose 'stems' to upload several files)")
        if len(files) > ws.limits.max_lanes:
            raise StudioError(f"at most {ws.limits.max_lanes} stems can be uploaded")
        loaded = []
        for f in files:
            audio, warn = await _audio_upload(ws, f, "mix" if mode == "mix" else "stem", MIN_CONTEXT_SECONDS)
            loaded.append((_stem_name(f), audio))
            notes += warn
        samples = max(a.shape[1] for _, a in loaded)
        ws.reset(samples)
        for name, audio in loaded:
            if audio.shape[1] < samples:
                notes.append(f"{name} was padded with silence to {samples / SAMPLE_RATE:.2f} s")
            await run_in_threadpool(ws.add_lane, name if mode == "stems" else f"mix: {name}",
                                    fit_length(audio, samples), mode if mode == "mix" else "stem")
    else:
        raise StudioError("choose how to start: an uploaded mix, uploaded stems or silence")
    return {**_state(studio, ws), "notes": notes}


async def add_lanes(studio: Any, request: Request) -> dict:
    """Uploaded stems as more lanes (cropped or padded to the track's length)."""
    ws = _ws(studio, request)
    samples = ws.require_track()
    files = _uploads(await _read_form(request), "files")
    if not files:
        raise StudioError("choose one or more audio files to add as lanes")
    notes: list[str] = []
    for f in files:
        audio, warn = await _audio_upload(ws, f, "stem", MIN_CONTEXT_SECONDS)
        notes += warn
        if audio.shape[1] != samples:
            how = "cropped" if audio.shape[1] > samples else "padded with silence"
            notes.append(f"{_stem_name(f)} was {how} to the track's {samples / SAMPLE_RATE:.2f} s")
        await run_in_threadpool(ws.add_lane, _stem_name(f), fit_length(audio, samples), "stem")
    return {**_state(studio, ws), "notes": notes}


async def update_lane(studio: Any, request: Request) -> dict:
    ws = _ws(studio, request)
    try:
        body = await request.json()
    except ValueError:
        raise StudioError("the lane update must be JSON") from None
    if not isinstance(body, dict):
        raise StudioError("the lane update must be a JSON object")
    name = body.get("name") if isinstance(body.get("name"), str) else None
    ws.update_lane(request.path_params["lane"], name=name, muted=body.get("muted"), solo=body.get("solo"))
    return _state(studio, ws)


async def delete_lane(studio: Any, request: Request) -> dict:
    ws = _ws(studio, request)
    ws.delete_lane(request.path_params["lane"])
    return _state(studio, ws)


def _format(request: Request) -> str:
    fmt = request.query_params.get("format", "wav").lower()
    if fmt not in FORMATS:
        raise StudioError(f"download format must be wav or flac, got '{fmt[:10]}'")
    return fmt


def _sent(path: Path, media_type: str, name: str) -> FileResponse:
    """A download of ``path``, whose folder is removed once the response is sent."""
    return FileResponse(path, media_type=media_type, filename=name,
                        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True))


def _download_name(name: str, fmt: str) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "lane") + f".{fmt}"


async def _send_audio(ws: Any, name: str, fmt: str, read: Any, *args: Any) -> FileResponse:
    """``read(*args)`` (48 kHz audio [C, N]) written as 24-bit ``name`` in the workspace's output
    folder and sent as a download (the file is removed after sending)."""
    audio = await run_in_threadpool(read, *args)
    path = await run_in_threadpool(save_audio, ws.out_path(name), audio, SAMPLE_RATE, subtype="24")
    return _sent(path, FORMATS[fmt], name)


async def lane_audio(studio: Any, request: Request) -> FileResponse:
    ws = _ws(studio, request)
    return FileResponse(ws.lane_path(request.path_params["lane"]), media_type="audio/wav",
                        headers={"Cache-Control": "no-store"})


async def lane_download(studio: Any, request: Request) -> FileResponse:
    ws = _ws(studio, request)
    fmt = _format(request)
    lane = ws.lane(request.path_params["lane"])
    return await _send_audio(ws, _download_name(lane.name, fmt), fmt, ws.lane_audio, lane.id)


async def mix_download(studio: Any, request: Request) -> FileResponse:
    ws = _ws(studio, request)
    fmt = _format(request)
    return await _send_audio(ws, f"mix.{fmt}", fmt, ws.context)


# ------------------------------------------------------------------------------------ candidates
async def candidate_audio(studio: Any, request: Request) -> FileResponse:
    ws = _ws(studio, request)
    return FileResponse(ws.candidate_path(request.path_params["cand"]), media_type="audio/wav",
                        headers={"Cache-Control": "no-store"})


async def keep(studio: Any, request: Request) -> dict:
    ws = _ws(studio, request)
    body: dict = {}
    if (await request.body()).strip():
        try:
            body = await request.json()
        except ValueError:
            raise StudioError("the keep request must be JSON") from None
    body = body if isinstance(body, dict) else {}
    name = body.get("name") if isinstance(body.get("name"), str) else None
    lane = await run_in_threadpool(lambda: ws.keep(request.path_params["cand"], replace=bool(body.get("replace")),
                                                   name=name))
    return {**_state(studio, ws), "lane": lane.id}


async def discard(studio: Any, request: Request) -> dict:
    ws = _ws(studio, request)
    ws.discard(request.path_params.get("cand"))
    return _state(studio, ws)


# ------------------------------------------------------------------------------------ model jobs
def _remember(ws: Workspace, form: Any) -> None:
    with ws.lock:
        ws.settings.update({k: v for k, v in form.items() if isinstance(v, str) and len(v) <= 600})


async def generate(studio: Any, request: Request) -> dict:
    ws = _ws(studio, request)
    ws.require_track()
    form = await _read_form(request)
    kw = options.generate(form, ws.limits)
    ref = _uploads(form, "reference")
    style = _uploads(form, "style_reference")
    if ref and kw["text_b"]:
        raise StudioError("a blend of two prompts cannot take a reference clip too; clear one of them")
    reference = (await _audio_upload(ws, ref[0], "reference", MIN_REFERENCE_SECONDS))[0] if ref else None
    style_audio = (await _audio_upload(ws, style[0], "style reference", MIN_REFERENCE_SECONDS))[0] if style else None
    context = await run_in_threadpool(ws.context)
    _remember(ws, form)
    label = kw["text"] or ("reference" if reference is not None else "context only")
    job = studio.jobs.submit(ws.sid, "generate", label, engine.generate_work(ws, context, kw, reference, style_audio))
    return {"job": job.public(studio.jobs.position(job))}


async def edit(studio: Any, request: Request) -> dict:
    ws = _ws(studio, request)
    ws.require_track()
    form = await _read_form(request)
    kw = options.edit(form, ws.limits, ws.seconds)
    lane = ws.lane(kw["lane"])
    stem = await run_in_threadpool(ws.lane_audio, lane.id)
    context = await run_in_threadpool(ws.context, lane.id)
    _remember(ws, form)
    job = studio.jobs.submit(ws.sid, kw["op"], f"{kw['op']} {lane.name}",
                             engine.edit_work(ws, lane.id, lane.name, stem, context, kw))
    return {"job": job.public(studio.jobs.position(job))}


def _job(studio: Any, request: Request):
    ws = _ws(studio, request)
    job = studio.jobs.get(request.path_params["job"])
    if job.sid != ws.sid:
        raise NotFound(f"no job '{job.id}' in this browser session")
    return job


async def job_state(studio: Any, request: Request) -> dict:
    job = _job(studio, request)
    return {"job": job.public(studio.jobs.position(job))}


async def job_cancel(studio: Any, request: Request) -> dict:
    job = studio.jobs.cancel(_job(studio, request).id)
    return {"job": job.public(studio.jobs.position(job))}


# ------------------------------------------------------------------------------ settings and zip
async def put_settings(studio: Any, request: Request) -> dict:
    ws = _ws(studio, request)
    raw = await request.body()
    if len(raw) > MAX_SETTINGS_BYTES:
        raise StudioError("the settings are too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise StudioError("the settings must be JSON") from None
    if not isinstance(body, dict):
        raise StudioError("the settings must be a JSON object")
    with ws.lock:
        ws.settings = {str(k): v for k, v in body.items() if isinstance(v, str | int | float | bool)}
    return {"settings": ws.settings}


async def session_zip(studio: Any, request: Request) -> FileResponse:
    ws = _ws(studio, request)
    ws.require_track()
    path = await run_in_threadpool(archive.write_session_zip, ws, ws.out_path("diffariff_session.zip"))
    return _sent(path, "application/zip", "diffariff_session.zip")


async def open_session(studio: Any, request: Request) -> dict:
    ws = _ws(studio, request)
    files = _uploads(await _read_form(request), "file")
    if not files:
        raise StudioError("choose a session zip to open")
    path = await save_upload(files[0], ws.root / "uploads", ws.limits.max_upload_bytes)
    try:
        notes = await run_in_threadpool(archive.open_session_zip, ws, path, display_name(files[0]))
    finally:
        path.unlink(missing_ok=True)
    return {**_state(studio, ws), "notes": notes}


def api_routes(endpoint: Any) -> list[Route]:
    """The API's routes, each handler wrapped by ``endpoint`` (JSON answers, one-line errors)."""
    s = "/api/s/{sid}"
    table = [
        ("/api/session", new_session, ["POST"]),
        (s, get_state, ["GET"]),
        (f"{s}/start", start, ["POST"]),
        (f"{s}/lanes", add_lanes, ["POST"]),
        (f"{s}/lanes/{{lane}}", update_lane, ["PATCH"]),
        (f"{s}/lanes/{{lane}}", delete_lane, ["DELETE"]),
        (f"{s}/lanes/{{lane}}/audio", lane_audio, ["GET"]),
        (f"{s}/lanes/{{lane}}/download", lane_download, ["GET"]),
        (f"{s}/mix/download", mix_download, ["GET"]),
        (f"{s}/candidates", discard, ["DELETE"]),
        (f"{s}/candidates/{{cand}}", discard, ["DELETE"]),
        (f"{s}/candidates/{{cand}}/audio", candidate_audio, ["GET"]),
        (f"{s}/candidates/{{cand}}/keep", keep, ["POST"]),
        (f"{s}/generate", generate, ["POST"]),
        (f"{s}/edit", edit, ["POST"]),
        (f"{s}/jobs/{{job}}", job_state, ["GET"]),
        (f"{s}/jobs/{{job}}/cancel", job_cancel, ["POST"]),
        (f"{s}/settings", put_settings, ["PUT"]),
        (f"{s}/session.zip", session_zip, ["GET"]),
        (f"{s}/open", open_session, ["POST"]),
    ]
    return [Route(path, endpoint(fn), methods=methods) for path, fn, methods in table]
