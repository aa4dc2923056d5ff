"""diffariff studio: a local web page where a producer builds a track stem by stem.

``diffariff studio`` serves one page (plain HTML, CSS and JavaScript shipped in ``static/``; no CDN,
no fonts or scripts from elsewhere, no telemetry) and a small JSON API on 127.0.0.1. Every generation
and edit calls the same :class:`~diffariff.pipeline.Accompanist` API as the command line.

Modules:

* :mod:`.uploads`: upload size / duration limits and one-line errors for bad audio.
* :mod:`.workspace`: one temporary folder per browser session, its lanes (float32 [2, N] at
  48 kHz, all of the track's length N) and its candidates.
* :mod:`.archive`: a browser session saved as a zip (lanes as 24-bit FLAC + ``session.json``) and
  opened again.
* :mod:`.options`: form fields -> validated Accompanist keywords.
* :mod:`.jobs`: the one model, loaded once, and the queue of generation jobs run by one worker
  thread, with per-step progress and cancellation.
* :mod:`.engine`: a job's work: context in, candidates out, through the Accompanist.
* :mod:`.server` / :mod:`.routes`: the Starlette application (:func:`create_app`), its JSON API and
  :func:`serve` (uvicorn).

Why Starlette and a hand-written page rather than Gradio: docs/design-notes.md, "Studio".
"""

from __future__ import annotations

__all__ = ["create_app", "serve"]


def __getattr__(name: str):
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
