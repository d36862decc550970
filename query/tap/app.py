"""The TAP service as a Starlette (ASGI) application: ``/sync``, ``/async`` (UWS 1.1), VOSI
``/capabilities``, ``/availability``, ``/tables``, DALI ``/examples`` and the landing page ``/``.

Queries run in worker threads (at most ``Config.workers`` at once); request bodies are
limited in size; bad requests get HTTP 400 with a VOTable error document naming the problem.
"""

from __future__ import annotations

import io
import os
import traceback
from pathlib import Path

import anyio
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from legacylake.errors import UserError
from legacylake.query.tap import landing, schema, uws, vosi
from legacylake.query.tap.engine import Config, Engine
from legacylake.query.tap.votable import SUFFIX, encode, error_votable, read_upload, response_format

XML = "text/xml"
VOT = "application/x-votable+xml"


class BadRequest(UserError):
    """A malformed TAP request (missing or bad parameter)."""


def default_jobs_dir(lake: Path) -> Path:
    """Where async jobs live by default: ``$XDG_CACHE_HOME/legacylake/tap-jobs/<lake folder name>-<hash>``."""
    import hashlib

    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "legacylake" / "tap-jobs"
    tag = hashlib.sha1(str(Path(lake).resolve()).encode()).hexdigest()[:10]
    return base / f"{Path(lake).name}-{tag}"


class Service:
    """The engine, the job store and the request handlers of one served lake."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.engine = Engine(cfg)
        self.limiter = anyio.CapacityLimiter(max(1, cfg.workers))
        self.jobs = uws.JobStore(cfg.jobs_dir or default_jobs_dir(cfg.lake), self._run_job, cfg.workers,
                                 int(cfg.timeout))
        snap = self.engine.snapshot()
        first = next(iter(snap.row_counts), None)
        ra = dec = 0.0
        if first:
            ra, dec = snap.con.sql(f'SELECT ra, dec FROM "{first}" LIMIT 1').fetchall()[0]
        alias = next((a for a, t in cfg.aliases.items() if t == first), None)
        self.examples = vosi.examples(first, ra, dec, alias) if first else []

    # ---------------------------------------------------------------- running queries
    def execute(self, params: dict[str, str], uploads: dict[str, pa.Table], cancel=None,
                timeout: float | None = None) -> tuple[bytes, str, str]:
        """(bytes, MIME type, file suffix) of the result of TAP parameters ``params``."""
        req = params.get("REQUEST")
        if req and req.lower() != "doquery":
            raise BadRequest(f"REQUEST={req} is not supported (use REQUEST=doQuery or leave it out)")
        lang = params.get("LANG")
        if not lang:
            raise BadRequest("LANG is missing (use LANG=ADQL)")
        if lang.upper() not in ("ADQL", "ADQL-2.0", "ADQL-2.1"):
            raise BadRequest(f"LANG={lang} is not supported (use LANG=ADQL)")
        query = params.get("QUERY")
        if not query or not query.strip():
            raise BadRequest("QUERY is missing")
        maxrec = None
        if params.get("MAXREC", "") != "":
            try:
                maxrec = int(params["MAXREC"])
            except ValueError:
                raise BadRequest(f"MAXREC={params['MAXREC']} is not an integer") from None
            if maxrec < 0:
                raise BadRequest(f"MAXREC={maxrec} is negative")
        fmt, mime = response_format(params.get("RESPONSEFORMAT") or params.get("FORMAT"))
        res = self.engine.run(query, maxrec, uploads, timeout, cancel)
        data = encode(res.table, fmt, self.engine.snapshot().meta.fields, res.overflow)
        return data, mime, SUFFIX[fmt]

    def _run_job(self, job: uws.Job, cancel) -> tuple[bytes, str, str]:
        uploads = {n: pq.read_table(p) for n, p in self.jobs.upload_files(job).items()}
        return self.execute(dict(job.parameters), uploads, cancel, float(job.executionDuration or self.cfg.timeout))

    def uploads(self, params: dict[str, str], files: dict[str, bytes]) -> dict[str, pa.Table]:
        """Tables of the UPLOAD parameter (``name,param:part;...``; inline parts only)."""
        out = {}
        for item in filter(None, (s.strip() for s in params.get("UPLOAD", "").split(";"))):
            name, _, uri = (x.strip() for x in item.partition(","))
            if not name.isidentifier():
                raise BadRequest(f"UPLOAD: table name {name!r} is not an ADQL identifier")
            if uri.startswith(("http://", "https://")):
                data = self._fetch(name, uri)
            elif uri.startswith("param:"):
                part = uri[len("param:"):]
                if part not in files:
                    raise BadRequest(f"UPLOAD {name}: the request has no part named {part!r}")
                data = files[part]
            else:
                raise BadRequest(f"UPLOAD {name}: {uri!r} is neither param:PART (inline) nor an http(s) URL")
            out[name] = read_upload(data, name, self.cfg.upload_max_rows)
        return out

    def _fetch(self, name: str, uri: str) -> bytes:
        """The VOTable at ``uri`` (at most ``upload_max_bytes``, 60 s)."""
        import urllib.request

        try:
            with urllib.request.urlopen(uri, timeout=60) as resp:
                data = resp.read(self.cfg.upload_max_bytes + 1)
        except Exception as exc:
            raise BadRequest(f"UPLOAD {name}: cannot read {uri}: {exc}") from None
        if len(data) > self.cfg.upload_max_bytes:
            raise BadRequest(f"UPLOAD {name}: {uri} is over {self.cfg.upload_max_bytes} bytes")
        return data

    # ---------------------------------------------------------------- request helpers
    async def params(self, request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
        params = {k.upper(): v for k, v in request.query_params.multi_items()}
        files: dict[str, bytes] = {}
        if request.method == "POST":
            ctype = request.headers.get("content-type", "")
            if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
                try:
                    form = await request.form(max_part_size=self.cfg.upload_max_bytes)
                except Exception as exc:
                    raise BadRequest(f"malformed form body: {exc}") from None
                for k, v in form.multi_items():
                    if isinstance(v, UploadFile):
                        files[k] = await v.read()
                    else:
                        params[k.upper()] = v
        return params, files

    def error(self, exc: BaseException) -> Response:
        if isinstance(exc, (UserError, ValueError)):
            return Response(error_votable(str(exc)), 400, media_type=VOT)
        if isinstance(exc, TimeoutError):
            return Response(error_votable(str(exc)), 500, media_type=VOT)
        traceback.print_exc()
        return Response(error_votable(f"internal error: {type(exc).__name__}: {exc}"), 500, media_type=VOT)

    def base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # ---------------------------------------------------------------- endpoints
    async def sync(self, request: Request) -> Response:
        try:
            params, files = await self.params(request)
            uploads = await anyio.to_thread.run_sync(self.uploads, params, files) if params.get("UPLOAD") else {}
            data, mime, _ = await anyio.to_thread.run_sync(self.execute, params, uploads, limiter=self.limiter)
        except Exception as exc:
            return self.error(exc)
        return Response(data, media_type=mime)

    async def job_list(self, request: Request) -> Response:
        base = self.base(request) + "/async"
        if request.method == "POST":
            try:
                params, files = await self.params(request)
                tables = await anyio.to_thread.run_sync(self.uploads, params, files)
                blobs = {}
                for n, t in tables.items():
                    buf = io.BytesIO()
                    pq.write_table(t, buf)
                    blobs[n] = buf.getvalue()
                phase = params.pop("PHASE", None)
                job = self.jobs.create(params, blobs)
            except Exception as exc:
                return self.error(exc)
            if phase and phase.upper() == "RUN":
                self.jobs.run(job.jobId)
            return RedirectResponse(f"{base}/{job.jobId}", status_code=303)
        await anyio.to_thread.run_sync(self.jobs.sweep)
        q = request.query_params
        try:
            jobs = uws.select_jobs(self.jobs.all(), [p.upper() for p in q.getlist("PHASE")], q.get("AFTER"),
                                   q.get("LAST"))
        except ValueError as exc:
            return self.error(BadRequest(f"bad job-list filter: {exc}"))
        return Response(uws.jobs_xml(jobs, base), media_type=XML)

    def _job(self, request: Request) -> uws.Job:
        return self.jobs.get(request.path_params["job"])

    async def job(self, request: Request) -> Response:
        base = self.base(request) + "/async"
        try:
            job = self._job(request)
        except KeyError:
            return PlainTextResponse("no such job", 404)
        if request.method == "DELETE":
            self.jobs.delete(job.jobId)
            return RedirectResponse(base, status_code=303)
        if request.method == "POST":
            params, _ = await self.params(request)
            if params.get("ACTION", "").upper() == "DELETE":
                self.jobs.delete(job.jobId)
                return RedirectResponse(base, status_code=303)
            return await self._post_job(job, params, base)
        wait = request.query_params.get("WAIT")
        if wait is not None:
            try:
                seconds = min(float(wait), 120.0) if float(wait) >= 0 else 120.0
            except ValueError:
                return self.error(BadRequest(f"WAIT={wait} is not a number of seconds"))
            job = await anyio.to_thread.run_sync(self.jobs.wait, job.jobId, seconds,
                                                 (request.query_params.get("PHASE") or "").upper() or None)
        return Response(uws.job_xml(job, base), media_type=XML)

    async def _post_job(self, job: uws.Job, params: dict[str, str], base: str) -> Response:
        try:
            if "PHASE" in params:
                return self._phase(job, params["PHASE"], base)
            fields = {}
            if "EXECUTIONDURATION" in params:
                fields["executionDuration"] = uws._int(params.pop("EXECUTIONDURATION"), self.jobs.default_duration)
            if "DESTRUCTION" in params:
                fields["destruction"] = uws.iso(uws.parse_iso(params.pop("DESTRUCTION")))
            if params:
                if job.phase != "PENDING":
                    raise BadRequest(f"parameters can only change while the job is PENDING (it is {job.phase})")
                fields["parameters"] = {**job.parameters, **params}
            self.jobs.update(job.jobId, **fields)
        except Exception as exc:
            return self.error(exc)
        return RedirectResponse(f"{base}/{job.jobId}", status_code=303)

    def _phase(self, job: uws.Job, phase: str, base: str) -> Response:
        p = phase.upper()
        if p == "RUN":
            self.jobs.run(job.jobId)
        elif p == "ABORT":
            self.jobs.abort(job.jobId)
        else:
            return self.error(BadRequest(f"PHASE={phase} is not allowed (use RUN or ABORT)"))
        return RedirectResponse(f"{base}/{job.jobId}", status_code=303)

    async def job_attr(self, request: Request) -> Response:
        base = self.base(request) + "/async"
        attr = request.path_params["attr"]
        try:
            job = self._job(request)
        except KeyError:
            return PlainTextResponse("no such job", 404)
        if request.method == "POST":
            params, _ = await self.params(request)
            if attr == "phase":
                return self._phase(job, params.get("PHASE", ""), base)
            if attr in ("executionduration", "destruction", "parameters"):
                return await self._post_job(job, params, base)
            return PlainTextResponse(f"{attr} cannot be changed", 403)
        value = {"phase": job.phase, "executionduration": str(job.executionDuration),
                 "destruction": job.destruction or "", "quote": "", "owner": ""}
        if attr in value:
            return PlainTextResponse(value[attr])
        if attr == "error":
            if not job.error:
                return PlainTextResponse("the job has no error", 404)
            return Response(error_votable(job.error), media_type=VOT)
        xml = uws.job_xml(job, base)
        tag = {"parameters": "uws:parameters", "results": "uws:results"}.get(attr)
        if tag is None:
            return PlainTextResponse(f"no job attribute {attr!r}", 404)
        start = xml.index(f"<{tag}")
        end = xml.index(f"</{tag}>") + len(tag) + 3 if f"</{tag}>" in xml else xml.index("/>", start) + 2
        ns = 'xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" xmlns:xlink="http://www.w3.org/1999/xlink"'
        frag = xml[start:end].replace(f"<{tag}", f"<{tag} {ns}", 1)
        return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + frag, media_type=XML)

    async def result(self, request: Request) -> Response:
        try:
            job = self._job(request)
        except KeyError:
            return PlainTextResponse("no such job", 404)
        if not job.result:
            return PlainTextResponse(f"the job has no result (phase {job.phase})", 404)
        return FileResponse(self.jobs.folder(job.jobId) / job.result["file"], media_type=job.result["mime"])

    async def capabilities(self, request: Request) -> Response:
        c = self.cfg
        return Response(vosi.capabilities_xml(self.base(request), c.max_rows, c.default_maxrec, c.timeout,
                                              c.upload_max_rows, uws.RETENTION_DAYS * 86400), media_type=XML)

    async def availability(self, request: Request) -> Response:
        try:
            snap = await anyio.to_thread.run_sync(self.engine.snapshot)
            return Response(vosi.availability_xml(True, f"serving {len(snap.cats)} catalog(s)"), media_type=XML)
        except Exception as exc:
            return Response(vosi.availability_xml(False, str(exc)), media_type=XML)

    async def tables(self, request: Request) -> Response:
        meta = self.engine.snapshot().meta
        name = request.path_params.get("name")
        try:
            return Response(schema.tables_xml(meta, name), media_type=XML)
        except KeyError:
            return PlainTextResponse(f"no table {name!r}", 404)

    async def examples_page(self, request: Request) -> Response:
        return Response(vosi.examples_xhtml(self.examples, self.cfg.name), media_type="application/xhtml+xml")

    async def index(self, request: Request) -> Response:
        meta = self.engine.snapshot().meta
        return HTMLResponse(landing.index_html(self.cfg.name, meta, self.examples, schema.functions(),
                                               self.base(request)))

    async def ui_query(self, request: Request) -> Response:
        q = request.query_params
        query = q.get("QUERY", "")
        try:
            maxrec = max(0, min(int(q.get("MAXREC") or 100), 10_000))
        except ValueError:
            maxrec = 100
        table, err, overflow = None, None, False
        try:
            res = await anyio.to_thread.run_sync(self.engine.run, query, maxrec, limiter=self.limiter)
            table, overflow = res.table, res.overflow
        except Exception as exc:
            err = str(exc)
        return HTMLResponse(landing.result_html(self.cfg.name, query, maxrec, table, err, overflow),
                            status_code=200 if err is None else 400)


class _SizeLimit:
    """ASGI middleware: 413 for request bodies declared larger than ``limit`` bytes; repeated
    slashes in the path collapsed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            if "//" in path:   # clients that join "http://host/" + "/sync"
                while "//" in path:
                    path = path.replace("//", "/")
                scope = {**scope, "path": path, "raw_path": path.encode()}
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.limit:
                resp = Response(error_votable(f"request body of {int(length)} bytes is over the limit of "
                                              f"{self.limit} bytes"), 413, media_type=VOT)
                return await resp(scope, receive, send)
        return await self.app(scope, receive, send)


def make_app(cfg: Config) -> Starlette:
    """The ASGI application serving ``cfg.lake``."""
    s = Service(cfg)
    both = ["GET", "POST"]
    routes = [
        Route("/", s.index), Route("/ui/query", s.ui_query),
        Route("/sync", s.sync, methods=both),
        Route("/async", s.job_list, methods=both),
        Route("/async/{job}", s.job, methods=["GET", "POST", "DELETE"]),
        Route("/async/{job}/results/result", s.result),
        Route("/async/{job}/{attr}", s.job_attr, methods=both),
        Route("/capabilities", s.capabilities), Route("/availability", s.availability),
        Route("/tables", s.tables), Route("/tables/{name}", s.tables),
        Route("/examples", s.examples_page),
    ]
    app = Starlette(routes=routes)
    app.state.service = s
    app.add_middleware(_SizeLimit, limit=cfg.upload_max_bytes + (1 << 20))
    return app
