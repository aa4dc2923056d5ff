"""The model, loaded once, and the queue of generation jobs.

One worker thread loads the bundle (:meth:`~diffariff.pipeline.Accompanist.from_pretrained`) and
then runs the queued jobs one at a time, whatever tab or browser session queued them, so two tabs
never run two models at once on the machine's cores. Progress is counted in sampler steps: each
diffusion model of the Accompanist is wrapped in a :class:`StepCounter` that forwards everything to
the model and, at each step of its sampler, adds one to the running job's count and stops the job
(:class:`JobCancelled`) when it was cancelled. Decoding and conditioning are not counted in steps;
the job's ``phase`` says when it decodes.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import DiffariffError
from .uploads import NotFound, one_line

log = logging.getLogger("diffariff.studio")
#: Finished jobs remembered for polling.
MAX_FINISHED = 200


def _done(acc: Any, job: Job) -> dict:
    """The work of a finished job (its own work, holding the request's audio, is dropped)."""
    return job.result


class JobCancelled(Exception):
    """Raised inside the sampler's step callback to stop a cancelled job."""


@dataclasses.dataclass
class Job:
    """A queued piece of model work. ``work(acc, job)`` runs in the worker thread and returns a
    result dict for the page; ``total`` is the planned number of sampler steps (set by the work
    function before sampling), ``step`` the steps done."""

    id: str
    sid: str
    kind: str
    label: str
    work: Callable[[Any, Job], dict]
    status: str = "queued"  # queued | running | done | error | cancelled
    phase: str = "queued"
    step: int = 0
    total: int = 0
    created: float = dataclasses.field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    step_started: float | None = None
    error: str | None = None
    result: dict = dataclasses.field(default_factory=dict)
    cancel_requested: bool = False

    def on_step(self) -> None:
        if self.cancel_requested:
            raise JobCancelled()
        if self.step_started is None:
            self.step_started = time.monotonic()
        self.step += 1
        self.phase = "decoding" if self.step >= self.total else "sampling"

    def public(self, position: int | None = None) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = 0.0 if self.started is None else (self.finished or now) - self.started
        eta = None
        if self.status == "running" and self.step_started is not None and 0 < self.step < self.total:
            eta = (now - self.step_started) / self.step * (self.total - self.step)
        return {"id": self.id, "kind": self.kind, "label": self.label, "status": self.status,
                "phase": self.phase, "step": self.step, "total": max(self.total, self.step), "elapsed": round(elapsed, 2),
                "eta": None if eta is None else round(eta, 1), "error": self.error, "result": self.result,
                "position": position}


class StepCounter:
    """Stands in for a :class:`~diffariff.diffusion.model.LatentDiffusion` inside an Accompanist:
    every attribute is the model's; :meth:`sample` also reports each sampler step to ``on_step``."""

    def __init__(self, model: Any, on_step: Callable[[], None]):
        self._model = model
        self._on_step = on_step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def sample(self, *args, callback: Callable[[dict], None] | None = None, **kw):
        def step(info: dict) -> None:
            if callback is not None:
                callback(info)
            self._on_step()

        return self._model.sample(*args, callback=step, **kw)


class JobQueue:
    """Loads the model with ``load()`` in its worker thread, then runs submitted jobs in order."""

    def __init__(self, load: Callable[[], Any]):
        self._load = load
        self.acc: Any = None
        self.state = "loading"  # loading | ready | failed
        self.load_error: str | None = None
        self.load_seconds: float | None = None
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._current: Job | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="diffariff-studio-worker", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------- worker
    def _report_step(self) -> None:
        job = self._current
        if job is not None:
            job.on_step()

    def _start(self) -> None:
        t0 = time.monotonic()
        try:
            acc = self._load()
            acc.models = {mode: StepCounter(m, self._report_step) for mode, m in acc.models.items()}
            self.acc, self.state = acc, "ready"
            self.load_seconds = time.monotonic() - t0
            log.info("model loaded in %.1f s", self.load_seconds)
        except Exception as exc:  # shown in the page as one line; the server keeps serving
            log.exception("could not load the model bundle")
            self.state, self.load_error = "failed", one_line(exc)
        finally:
            self._ready.set()

    def _run(self) -> None:
        self._start()
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.cancel_requested:
                job.status, job.phase, job.finished, job.work = "cancelled", "cancelled", time.monotonic(), _done
                continue
            self._execute(job)

    def _execute(self, job: Job) -> None:
        job.status, job.phase, job.started = "running", "preparing", time.monotonic()
        self._current = job
        try:
            if self.acc is None:
                raise DiffariffError(f"the model could not be loaded: {self.load_error}")
            job.result = job.work(self.acc, job) or {}
            job.status, job.phase = "done", "done"
        except JobCancelled:
            job.status, job.phase = "cancelled", "cancelled"
        except DiffariffError as exc:
            job.status, job.phase, job.error = "error", "error", one_line(exc)
        except Exception as exc:
            log.exception("job %s failed", job.id)
            job.status, job.phase = "error", "error"
            job.error = one_line(f"internal error ({type(exc).__name__}: {exc}); see the server log")
        finally:
            self._current = None
            job.work = _done  # let the request's audio go
            job.finished = time.monotonic()
            log.info("job %s (%s) %s in %.1f s", job.id, job.kind, job.status, job.finished - job.started)

    # ------------------------------------------------------------------------------------- API
    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the model is loaded (or failed); True when it is ready."""
        self._ready.wait(timeout)
        return self.state == "ready"

    def submit(self, sid: str, kind: str, label: str, work: Callable[[Any, Job], dict]) -> Job:
        job = Job(f"J{next(self._ids)}", sid, kind, label, work)
        with self._lock:
            self._jobs[job.id] = job
            self._order.append(job.id)
            while len(self._order) > MAX_FINISHED:
                old = self._jobs.get(self._order[0])
                if old is not None and old.status in ("queued", "running"):
                    break
                self._jobs.pop(self._order.pop(0), None)
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job '{job_id}'")
        return job

    def position(self, job: Job) -> int | None:
        """How many jobs run or wait before ``job`` (0: it runs now); None once finished."""
        if job.status not in ("queued", "running"):
            return None
        with self._lock:
            ahead = [self._jobs[j] for j in self._order if j in self._jobs]
        return sum(1 for j in ahead if j.status in ("queued", "running") and j.created < job.created)

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status in ("queued", "running"):
            job.cancel_requested = True
            if job.status == "queued":
                job.status, job.phase = "cancelled", "cancelled"
        return job

    def active(self, sid: str) -> list[Job]:
        """The queued and running jobs of browser session ``sid``, oldest first."""
        with self._lock:
            jobs = [self._jobs[j] for j in self._order if j in self._jobs]
        return [j for j in jobs if j.sid == sid and j.status in ("queued", "running")]

    def busy(self) -> bool:
        return self._current is not None or not self._queue.empty()

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what is queued and running, and stop the worker."""
        with self._lock:
            for job in self._jobs.values():
                if job.status in ("queued", "running"):
                    job.cancel_requested = True
        self._queue.put(None)
        self._thread.join(timeout)
