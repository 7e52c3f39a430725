"""The ``labelstudio`` review backend: push tasks to a Label Studio server, pull annotations back.

Connection: ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` (the SDK's names), or an explicit
``url`` and ``token_file`` (either a bare token or an env file such as the one
``cumed labelstudio start`` writes). All access goes through ``label-studio-sdk`` 2.x.

- One project per (dataset, task type), titled ``cumed review: <dataset>`` (other task types:
  ``cumed <type>: <dataset>``); created on first push, reused afterwards.
- ``push`` imports only tasks whose ``data.doc_id`` is not in the project yet, in chunks
  (``projects.import_tasks``), and stamps ``data.batch`` so ``pull`` can select a batch. A doc
  already queued by an earlier batch keeps that batch. Re-push is a no-op; a push cut short (server
  killed, network down) raises ``CumedError`` and a re-run imports only what is missing.
- Several clients at once (machines sharing one server, or a client that timed out while the server
  still imported its request, then re-ran): the server has no unique key on ``data.doc_id``, so
  "list, then import the missing" can race. Both steps therefore converge afterwards instead of
  locking (the clients may share no disk): project creation re-lists by the deterministic title
  and every client uses the lowest project id (a surplus project stays, empty and unused);
  after importing, ``push`` re-lists the project and deletes surplus tasks per ``doc_id``,
  keeping the lowest task id (a surplus task that already carries annotations is kept and
  counted, never deleted). Ids grow with creation, so the last importer sees every copy.
- ``pull`` lists the batch's tasks page by page (``tasks.list`` with a ``data.batch`` filter;
  full exports of large projects time out in Label Studio) and keeps a checkpoint in
  ``<cache_dir>/pull-<batch>.json`` so an interrupted pull resumes; the checkpoint is removed when
  the pull completes. Returns tasks in Label Studio's JSON export format.
- Predictions (pre-annotations, ``annotation.review.predictions``) travel in the import format; the
  project's ``model_version`` is set to the batch's, so Label Studio pre-selects its suggestion.
- Text: lone UTF-16 surrogates (not encodable as UTF-8, so no server can store them) become U+FFFD
  before upload; everything else, emoji included, round-trips exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from cumed.atomic import write_json, write_text
from cumed.errors import CumedError

from annotation.review.backend import ReviewBackend

DEFAULT_CACHE = Path(".cache") / "labelstudio"
_SURROGATE = re.compile("[\ud800-\udfff]")
# Data-Manager-only fields that are not part of Label Studio's JSON export format.
_DM_ONLY = {"annotations_results", "predictions_results", "annotations_ids", "predictions_model_versions",
            "annotators", "completed_at", "draft_exists", "is_labeled", "overlap", "predictions_score",
            "storage_filename", "avg_lead_time", "reviewers", "reviewed", "reviews_accepted",
            "reviews_rejected", "ground_truth"}
_ANN_DM_ONLY = {"created_username", "created_ago"}


def clean_text(value):
    """Recursively replace lone surrogates with U+FFFD (valid surrogate pairs are joined)."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return value
    if isinstance(value, dict):
        return {clean_text(k): clean_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_text(v) for v in value]
    return value


def _token_from_file(path: str | Path) -> tuple[str | None, str | None]:
    """(token, url) from an env file (``LABEL_STUDIO_API_KEY=...``) or a bare-token file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise CumedError(f"cannot read Label Studio token file {p}: {e.strerror}; "
                         f"pass the env file `cumed labelstudio start` wrote, or a file holding the token")
    if "=" in text:
        from annotation.labelstudio.server import read_env_file
        env = read_env_file(p)
        return env.get("LABEL_STUDIO_API_KEY"), env.get("LABEL_STUDIO_URL")
    return text.strip() or None, None


def _safe_name(batch_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", batch_id)[:120] or "batch"


class LabelStudioBackend(ReviewBackend):
    name = "labelstudio"

    def __init__(self, url: str | None = None, token: str | None = None, token_file: str | Path | None = None,
                 *, task_type: str = "review", chunk_size: int = 1000, page_size: int = 500,
                 cache_dir: str | Path | None = None, timeout: float = 300.0):
        file_url = None
        if token_file:
            token, file_url = _token_from_file(token_file)
            if not token:
                raise CumedError(f"no token in {token_file}; it needs LABEL_STUDIO_API_KEY=... or the bare token")
        self.url = (url or file_url or os.environ.get("LABEL_STUDIO_URL") or "").rstrip("/")
        self._token = token or os.environ.get("LABEL_STUDIO_API_KEY")
        if not self.url:
            raise CumedError("no Label Studio URL: set LABEL_STUDIO_URL or pass --ls-url "
                             "(a local server: `cumed labelstudio start`, then source the env file it names)")
        if not self._token:
            raise CumedError(f"no API token for Label Studio at {self.url}: set LABEL_STUDIO_API_KEY or pass "
                             f"--ls-token-file (a local server's is in .cache/labelstudio/labelstudio.env)")
        self.task_type = task_type
        self.chunk_size = max(1, int(chunk_size))
        self.page_size = max(1, int(page_size))
        self.cache_dir = Path(cache_dir or DEFAULT_CACHE)
        self.timeout = timeout
        self._client = None

    def __repr__(self) -> str:  # never show the token
        return f"LabelStudioBackend(url={self.url!r}, task_type={self.task_type!r})"

    @property
    def client(self):
        if self._client is None:
            from label_studio_sdk import LabelStudio
            self._client = LabelStudio(base_url=self.url, api_key=self._token, timeout=self.timeout)
        return self._client

    def close(self) -> None:
        """Close the HTTP connection pool (keep-alive sockets to the server)."""
        if self._client is not None:
            try:
                self._client._client_wrapper.httpx_client.httpx_client.close()
            except AttributeError:  # pragma: no cover - SDK internals moved
                pass
            self._client = None

    # ---- errors --------------------------------------------------------------------------
    def _fail(self, e: Exception, doing: str, hint: str = "") -> CumedError:
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        if isinstance(e, CumedError):
            return e
        if isinstance(e, httpx.ConnectError):
            return CumedError(f"Label Studio at {self.url} is not reachable ({doing}: connection refused); "
                              f"start it with `cumed labelstudio start` or fix LABEL_STUDIO_URL{hint}")
        if isinstance(e, httpx.TimeoutException):
            return CumedError(f"Label Studio at {self.url} timed out ({doing}); check the server's load/log "
                              f"and re-run{hint}")
        if isinstance(e, httpx.TransportError):
            return CumedError(f"Label Studio at {self.url} dropped the connection ({doing}: "
                              f"{type(e).__name__}); restart it (`cumed labelstudio start`) and re-run{hint}")
        if isinstance(e, ApiError):
            code = e.status_code
            if code in (401, 403):
                return CumedError(f"Label Studio at {self.url} rejected the API token (HTTP {code}, {doing}); "
                                  f"check LABEL_STUDIO_API_KEY / --ls-token-file (a local server's token is in "
                                  f".cache/labelstudio/labelstudio.env) and that legacy tokens are enabled")
            body = e.body if isinstance(e.body, str) else json.dumps(e.body, ensure_ascii=False, default=str)
            body = " ".join(str(body).split())[:200]
            return CumedError(f"Label Studio at {self.url} answered HTTP {code} ({doing}): {body}; "
                              f"see the server log{hint}")
        return CumedError(f"Label Studio at {self.url} failed ({doing}: {type(e).__name__}: {e}){hint}")

    @staticmethod
    def _is_api_fault(e: Exception) -> bool:
        import httpx
        from label_studio_sdk.core.api_error import ApiError
        return isinstance(e, (httpx.HTTPError, ApiError))

    def _call(self, doing: str, fn, *args, hint: str = "", **kw):
        try:
            return fn(*args, **kw)
        except CumedError:
            raise
        except Exception as e:  # noqa: BLE001 - every transport/API fault becomes one clear line
            if self._is_api_fault(e):
                raise self._fail(e, doing, hint) from None
            raise

    # ---- projects ------------------------------------------------------------------------
    def project_title(self, dataset: str) -> str:
        """``cumed review: <dataset>``; Label Studio caps titles at 50 chars, so a longer one keeps
        41 chars plus a hash of the dataset name (two long names never share a project)."""
        title = f"cumed {self.task_type}: {dataset}"
        if len(title) > 50:
            title = title[:41] + "~" + hashlib.sha1(dataset.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        return title

    def _project_ids(self, dataset: str) -> list[int]:
        title = self.project_title(dataset)
        pager = self._call("listing projects", self.client.projects.list, title=title, page_size=100)
        return sorted(p.id for p in self._call("listing projects", lambda: list(pager)) if p.title == title)

    def find_project(self, dataset: str) -> int | None:
        """The dataset's project: the lowest id with its title (several exist only after a creation
        race, and every client picks the same one)."""
        ids = self._project_ids(dataset)
        return ids[0] if ids else None

    def ensure_project(self, dataset: str, label_config: str) -> int:
        pid = self.find_project(dataset)
        if pid is not None:
            return pid
        created = self._call("creating project", self.client.projects.create, title=self.project_title(dataset),
                             label_config=label_config,
                             description=f"cumed manual review of {dataset} ({self.task_type})").id
        # Other clients may have created one at the same time (or the SDK retried a create the
        # server had done): every client re-lists and uses the lowest id. The surplus ones are left
        # empty, not deleted: Label Studio 1.23 deletes a project with every model signal switched
        # off process-wide, and two overlapping deletes can leave them off until a restart (task
        # counters then stop counting annotations).
        return min([created, *self._project_ids(dataset)])

    def _delete(self, doing: str, fn, **kw) -> None:
        """A delete that tolerates 404: a racing client may have deleted the same thing first."""
        try:
            fn(**kw)
        except Exception as e:  # noqa: BLE001
            if getattr(e, "status_code", None) == 404:
                return
            raise self._fail(e, doing, "; re-run the push: it finishes the clean-up") if self._is_api_fault(e) else e

    def _pages(self, project: int, doing: str, query: str | None = None, fields: str = "all",
               start_page: int = 1, include: str | None = None):
        """Yield (page_number, [task model]) until the project (or query) is exhausted."""
        page = start_page
        while True:
            try:
                pager = self.client.tasks.list(project=project, page=page, page_size=self.page_size,
                                               fields=fields, query=query, include=include)
            except Exception as e:  # noqa: BLE001
                if page > 1 and getattr(e, "status_code", None) == 404:
                    return  # past the last page (the previous one was exactly full)
                raise self._fail(e, doing) if self._is_api_fault(e) else e
            items = list(pager.items or [])
            yield page, items
            if len(items) < self.page_size or not pager.has_next:
                return
            page += 1

    def _tasks_by_doc(self, project: int) -> dict[str, list[tuple[int, bool]]]:
        """doc_id -> [(task id, has annotations)], lowest id first: every copy of every document."""
        out: dict[str, list[tuple[int, bool]]] = {}
        # include=...: ~2.5x faster than the full task rows (no annotation summaries computed)
        for _, items in self._pages(project, "listing queued tasks", fields="task_only",
                                    include="id,data,total_annotations,cancelled_annotations"):
            for t in items:
                doc = (t.data or {}).get("doc_id")
                if doc is not None:
                    done = bool(t.total_annotations or 0) or bool(t.cancelled_annotations or 0)
                    out.setdefault(str(doc), []).append((t.id, done))
        for copies in out.values():
            copies.sort()
        return out

    def existing_doc_ids(self, project: int) -> set[str]:
        return set(self._tasks_by_doc(project))

    def remove_duplicates(self, project: int) -> dict:
        """Delete surplus copies of each document, keeping its lowest task id; annotated copies stay.
        ``remaining``: the task ids left in the project, as this listing saw them."""
        removed, remaining, annotated = [], set(), 0
        for copies in self._tasks_by_doc(project).values():
            remaining.add(copies[0][0])
            for tid, has_annotations in copies[1:]:
                if has_annotations:
                    annotated += 1
                    remaining.add(tid)
                    continue
                self._delete(f"removing duplicate task {tid} from project {project}", self.client.tasks.delete,
                             id=str(tid))
                removed.append(tid)
        return {"removed": removed, "remaining": remaining, "annotated_duplicates": annotated}

    # ---- push ----------------------------------------------------------------------------
    def push(self, batch_id: str, dataset: str, tasks: list[dict], label_config: str) -> dict:
        prepared, seen, replaced = [], set(), 0
        for i, t in enumerate(tasks):
            data = t.get("data") if isinstance(t, dict) else None
            if not isinstance(data, dict) or data.get("doc_id") in (None, ""):
                raise CumedError(f"task #{i} of batch {batch_id} has no data.doc_id; every review task needs "
                                 f"{{'data': {{'doc_id': ..., ...}}}}")
            clean = clean_text(t)
            replaced += clean != t
            doc = str(clean["data"]["doc_id"])
            if doc in seen:
                continue
            seen.add(doc)
            clean = {**clean, "data": {**clean["data"], "doc_id": doc, "batch": batch_id}}
            prepared.append(clean)
        dup_in_input = len(tasks) - len(prepared)

        project = self.ensure_project(dataset, label_config)
        before = self._tasks_by_doc(project)
        new = [t for t in prepared if t["data"]["doc_id"] not in before]
        imported, ours = self._import(project, batch_id, new)
        self._prelabel_with(project, new)
        dedup = {"removed": [], "annotated_duplicates": 0}
        pushed = imported
        if imported or any(len(c) > 1 for c in before.values()):
            # Re-list after importing: a racing client (or the server finishing a request we gave up
            # on) may have imported the same documents; the lowest task id of each stays.
            dedup = self.remove_duplicates(project)
            if ours:  # ours that lost to an older copy (deleted by us or by the other client) were not new
                pushed = len(ours & dedup["remaining"])
        return {"pushed": pushed, "skipped": len(prepared) - pushed + dup_in_input,
                "project": project, "project_title": self.project_title(dataset), "url": self.url,
                "batch": batch_id, "surrogates_replaced": replaced,
                "duplicates_removed": len(dedup["removed"]), "annotated_duplicates": dedup["annotated_duplicates"]}

    def _prelabel_with(self, project: int, tasks: list[dict]) -> None:
        """Tasks carrying predictions (``review push --predictions``): make their model version the
        project's, which Label Studio pre-labels with (it sets only an empty one on import, so a later
        batch scored by another model would otherwise open blank)."""
        # after the import: Label Studio accepts only a model version some prediction already has
        versions = sorted({p.get("model_version") for t in tasks for p in t.get("predictions") or []} - {None})
        if not versions:
            return
        current = self._call("reading project", self.client.projects.get, id=project).model_version
        if current != versions[-1]:
            self._call("setting the project's model version", self.client.projects.update, id=project,
                       model_version=versions[-1])

    def _import(self, project: int, batch_id: str, new: list[dict]) -> tuple[int, set[int]]:
        """Import in chunks: (tasks imported, the task ids the server reports it made for us)."""
        count, ids = 0, set()
        for start in range(0, len(new), self.chunk_size):
            chunk = new[start:start + self.chunk_size]
            hint = (f"; {count} of {len(new)} new tasks of batch {batch_id} were imported before the fault - "
                    f"re-running the push imports only the missing ones")
            res = self._call(f"importing tasks {start + 1}-{start + len(chunk)} into project {project}",
                             self.client.projects.import_tasks, id=project, request=chunk, return_task_ids=True,
                             request_options={"max_retries": 0}, hint=hint)
            count += len(chunk)
            ids.update(getattr(res, "task_ids", None) or [])
        return count, ids

    # ---- pull ----------------------------------------------------------------------------
    def checkpoint_path(self, batch_id: str) -> Path:
        return self.cache_dir / f"pull-{_safe_name(batch_id)}.json"

    @staticmethod
    def _export_task(model) -> dict:
        d = model.model_dump(mode="json", exclude_none=False)
        for k in _DM_ONLY:
            d.pop(k, None)
        d["annotations"] = [{k: v for k, v in a.items() if k not in _ANN_DM_ONLY}
                            for a in d.get("annotations") or []]
        d.setdefault("predictions", [])
        return clean_text(d)

    def _save_checkpoint(self, path: Path, state: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(state, ensure_ascii=False))

    def _with_annotator_emails(self, tasks: list[dict]) -> list[dict]:
        """The task API gives ``completed_by`` as a user id; the JSON export gives the user. Resolve
        ids to ``{"id", "email"}`` so lineage and agreement name people, as an export would."""
        ids = {a.get("completed_by") for t in tasks for a in t.get("annotations") or []}
        if not any(isinstance(i, int) for i in ids):
            return tasks
        users = {u.id: u.email for u in self._call("listing users", self.client.users.list)}
        for t in tasks:
            for a in t.get("annotations") or []:
                who = a.get("completed_by")
                if isinstance(who, int):
                    a["completed_by"] = {"id": who, "email": users.get(who) or str(who)}
        return tasks

    def pull(self, batch_id: str, dataset: str, source: str | None = None) -> list[dict]:
        """The batch's tasks with annotations. ``source``: a Label Studio JSON export file to read
        instead of the server (e.g. exported from the UI)."""
        if source:
            return self._pull_file(batch_id, source)
        project = self.find_project(dataset)
        if project is None:
            raise CumedError(f"no Label Studio project '{self.project_title(dataset)}' at {self.url}; "
                             f"push batch {batch_id} first")
        ck = self.checkpoint_path(batch_id)
        state = {"batch": batch_id, "dataset": dataset, "project": project, "page_size": self.page_size,
                 "next_page": 1, "tasks": []}
        if ck.exists():
            try:
                old = json.loads(ck.read_text(encoding="utf-8"))
                if (old.get("project"), old.get("batch"), old.get("page_size")) == (project, batch_id, self.page_size):
                    state = old
            except (OSError, ValueError):
                pass  # a torn checkpoint: start over
        query = json.dumps({"filters": {"conjunction": "and", "items": [
            {"filter": "filter:tasks:data.batch", "operator": "equal", "type": "String", "value": batch_id}]},
            "ordering": ["tasks:id"]}, ensure_ascii=False)
        seen = {t["id"] for t in state["tasks"]}
        for page, items in self._pages(project, f"pulling batch {batch_id}", query=query,
                                       start_page=state["next_page"]):
            for m in items:
                t = self._export_task(m)
                if t.get("data", {}).get("batch") == batch_id and t["id"] not in seen:
                    seen.add(t["id"])
                    state["tasks"].append(t)
            state["next_page"] = page + 1
            self._save_checkpoint(ck, state)
        ck.unlink(missing_ok=True)
        return self._with_annotator_emails(state["tasks"])

    def _pull_file(self, batch_id: str, source: str) -> list[dict]:
        from annotation.review.file_backend import read_export
        return clean_text(read_export(Path(source)))


def write_tasks(path: str | Path, tasks: list[dict]) -> Path:
    """Write pulled tasks as UTF-8 JSON without ASCII escaping (lone surrogates -> U+FFFD)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_json(p, clean_text(tasks))
    return p
