"""UWS 1.1 asynchronous jobs kept on disk, so jobs and their results survive a restart.

A job is a folder ``JOBS/<id>/`` with ``job.json`` (phase, parameters, times; rewritten
atomically), its uploads as Parquet, and ``result.<ext>`` or ``error.xml``. Jobs that were
QUEUED or EXECUTING when the service stopped come back as ERROR (their query was cut off);
jobs past their destruction time are deleted on the next look at the job list.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape, quoteattr

PHASES = ("PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED", "UNKNOWN", "HELD", "SUSPENDED",
          "ARCHIVED")
FINAL = {"COMPLETED", "ERROR", "ABORTED", "ARCHIVED"}
#: Days a job is kept by default.
RETENTION_DAYS = 7

_NS = ('xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" xmlns:xlink="http://www.w3.org/1999/xlink" '
       'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"')


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime | None) -> str | None:
    """UTC time as ISO 8601 with milliseconds and Z (UWS/DALI timestamps)."""
    return None if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{t.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """A DALI timestamp (``2026-12-05T10:00:00[.sss][Z]``) as an aware UTC datetime; ValueError if malformed."""
    s = text.strip().removesuffix("Z")
    t = datetime.fromisoformat(s)
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


class Job:
    """One job's state (what ``job.json`` holds)."""

    def __init__(self, d: dict):
        self.__dict__.update(d)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class JobStore:
    """Jobs under ``root``; ``runner(job, cancel_event) -> (bytes, mime, suffix)`` runs one."""

    def __init__(self, root: Path, runner: Callable, workers: int, default_duration: int):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.runner = runner
        self.default_duration = int(default_duration)
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="uws")
        self.cancels: dict[str, threading.Event] = {}
        self.lock = threading.RLock()
        for job in self.all():
            if job.phase in ("QUEUED", "EXECUTING"):
                job.phase, job.error = "ERROR", "the service restarted while this job was running; run it again"
                job.endTime = iso(now())
                self.save(job)
        self.sweep()

    # ---------------------------------------------------------------- storage
    def folder(self, job_id: str) -> Path:
        if not job_id or not all(c.isalnum() for c in job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def save(self, job: Job) -> None:
        d = self.folder(job.jobId)
        tmp = d / "job.json.tmp"
        tmp.write_text(json.dumps(job.to_dict()))
        os.replace(tmp, d / "job.json")

    def get(self, job_id: str) -> Job:
        try:
            return Job(json.loads((self.folder(job_id) / "job.json").read_text()))
        except (OSError, ValueError):
            raise KeyError(job_id) from None

    def all(self) -> list[Job]:
        out = []
        for d in sorted(self.root.iterdir()):
            try:
                out.append(self.get(d.name))
            except KeyError:
                continue
        return out

    def sweep(self) -> None:
        """Delete jobs whose destruction time has passed."""
        t = now()
        for job in self.all():
            if job.destruction and parse_iso(job.destruction) <= t:
                self.delete(job.jobId)

    # ---------------------------------------------------------------- life cycle
    def create(self, params: dict[str, str], uploads: dict[str, bytes]) -> Job:
        """A PENDING job with ``params`` (upper-case names) and uploaded tables (Parquet bytes by name)."""
        job_id = secrets.token_hex(8)
        d = self.folder(job_id)
        d.mkdir()
        for name, data in uploads.items():
            (d / f"upload_{name}.parquet").write_bytes(data)
        t = now()
        job = Job(dict(jobId=job_id, runId=params.pop("RUNID", None), phase="PENDING", creationTime=iso(t),
                       startTime=None, endTime=None,
                       executionDuration=_int(params.pop("EXECUTIONDURATION", None), self.default_duration),
                       destruction=iso(t + timedelta(days=RETENTION_DAYS)), parameters=params,
                       uploads=sorted(uploads), result=None, error=None))
        self.save(job)
        return job

    def upload_files(self, job: Job) -> dict[str, Path]:
        return {n: self.folder(job.jobId) / f"upload_{n}.parquet" for n in job.uploads}

    def run(self, job_id: str) -> Job:
        """PHASE=RUN: queue a PENDING (or HELD) job; other phases are left as they are."""
        with self.lock:
            job = self.get(job_id)
            if job.phase not in ("PENDING", "HELD"):
                return job
            job.phase = "QUEUED"
            self.save(job)
            self.cancels[job_id] = threading.Event()
        self.pool.submit(self._execute, job_id)
        return job

    def abort(self, job_id: str) -> Job:
        with self.lock:
            job = self.get(job_id)
            if job.phase in FINAL:
                return job
            ev = self.cancels.get(job_id)
            if ev is not None:
                ev.set()
            job.phase, job.endTime = "ABORTED", iso(now())
            self.save(job)
            return job

    def delete(self, job_id: str) -> None:
        with self.lock:
            ev = self.cancels.pop(job_id, None)
            if ev is not None:
                ev.set()
            shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def update(self, job_id: str, **fields) -> Job:
        with self.lock:
            job = self.get(job_id)
            job.__dict__.update(fields)
            self.save(job)
            return job

    def _execute(self, job_id: str) -> None:
        with self.lock:
            try:
                job = self.get(job_id)
            except KeyError:
                return
            if job.phase != "QUEUED":
                return
            job.phase, job.startTime = "EXECUTING", iso(now())
            self.save(job)
            cancel = self.cancels.setdefault(job_id, threading.Event())
        try:
            data, mime, suffix = self.runner(job, cancel)
            phase, error = "COMPLETED", None
        except Exception as exc:  # the job's error document says what went wrong
            data, mime, suffix = None, None, None
            phase, error = ("ABORTED", None) if cancel.is_set() else ("ERROR", str(exc) or type(exc).__name__)
        with self.lock:
            try:
                job = self.get(job_id)
            except KeyError:
                return   # deleted while running
            if job.phase == "ABORTED":
                return
            d = self.folder(job_id)
            if data is not None:
                tmp = d / f"result.{suffix}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, d / f"result.{suffix}")
                job.result = {"file": f"result.{suffix}", "mime": mime}
            job.phase, job.error, job.endTime = phase, error, iso(now())
            self.save(job)
            self.cancels.pop(job_id, None)

    def wait(self, job_id: str, seconds: float, phase: str | None) -> Job:
        """UWS 1.1 blocking: wait up to ``seconds`` while the job is in ``phase`` (default: its
        current phase, if that is not final)."""
        end = time.monotonic() + max(0.0, seconds)
        job = self.get(job_id)
        start = phase or job.phase
        if start in FINAL or job.phase != start:
            return job
        while time.monotonic() < end:
            time.sleep(0.05)
            job = self.get(job_id)
            if job.phase != start:
                break
        return job


def _int(value, default: int) -> int:
    try:
        return max(0, int(value)) if value not in (None, "") else default
    except ValueError:
        raise ValueError(f"EXECUTIONDURATION must be an integer number of seconds, not {value!r}") from None


def _el(tag: str, value) -> str:
    if value is None:
        return f'<uws:{tag} xsi:nil="true"/>'
    return f"<uws:{tag}>{escape(str(value))}</uws:{tag}>"


def job_xml(job: Job, base: str) -> str:
    """The UWS 1.1 job document; ``base`` is the job list URL (``.../async``)."""
    parts = [f"<uws:jobId>{job.jobId}</uws:jobId>"]
    if job.runId:
        parts.append(_el("runId", job.runId))
    parts += [_el("ownerId", None), _el("phase", job.phase), _el("quote", None),
              _el("creationTime", job.creationTime), _el("startTime", job.startTime), _el("endTime", job.endTime),
              _el("executionDuration", job.executionDuration), _el("destruction", job.destruction)]
    params = "".join(f"<uws:parameter id={quoteattr(k.lower())}>{escape(str(v))}</uws:parameter>"
                     for k, v in sorted(job.parameters.items()))
    parts.append(f"<uws:parameters>{params}</uws:parameters>")
    res = ""
    if job.result:
        res = f'<uws:result id="result" xlink:type="simple" xlink:href={quoteattr(f"{base}/{job.jobId}/results/result")}/>'
    parts.append(f"<uws:results>{res}</uws:results>")
    if job.error:
        parts.append(f'<uws:errorSummary type="fatal" hasDetail="true"><uws:message>{escape(job.error)}'
                     "</uws:message></uws:errorSummary>")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:job {_NS} version="1.1">' + "".join(parts) + "</uws:job>"


def jobs_xml(jobs: list[Job], base: str) -> str:
    """The UWS 1.1 job list."""
    refs = []
    for j in jobs:
        inner = _el("phase", j.phase) + (_el("runId", j.runId) if j.runId else "") + _el("creationTime", j.creationTime)
        refs.append(f'<uws:jobref id="{j.jobId}" xlink:type="simple" xlink:href={quoteattr(f"{base}/{j.jobId}")}>'
                    f"{inner}</uws:jobref>")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:jobs {_NS} version="1.1">' + "".join(refs) + "</uws:jobs>"


def select_jobs(jobs: list[Job], phases: list[str], after: str | None, last: str | None) -> list[Job]:
    """UWS 1.1 job-list filters PHASE (repeatable), AFTER (time), LAST (n most recent); ARCHIVED
    jobs only when asked for by PHASE."""
    out = [j for j in jobs if (j.phase in phases if phases else j.phase != "ARCHIVED")]
    if after:
        t = parse_iso(after)
        out = [j for j in out if parse_iso(j.creationTime) > t]
    out.sort(key=lambda j: j.creationTime)
    if last:
        n = int(last)
        out = sorted(out, key=lambda j: j.creationTime, reverse=True)[:n]
    return out
