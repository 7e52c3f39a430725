"""Local state of annotation batches (review and ranking), kept beside the datasets.

``<store>/<folder>/<dataset>/`` holds a ``ledger.json`` (item id -> batch id for every item ever
queued) and one folder per batch named ``<dataset>.<letter><NNN>`` with its ``batch.json`` and a
JSONL file of validated results. The folder name starts with ``_``, which is not a valid dataset
name, so store listings ignore it. Subclasses say which folder, letter and result type.

Concurrency and crashes (several pushes and pulls may run at once, from several processes):

- ``.lock`` (``fcntl.flock``) serialises every read-modify-write of the dataset's state: batch-id
  allocation, the ledger, appends to a results file. Two pushes get distinct batch ids and
  disjoint items; two pulls never add one annotation twice.
- ``<batch>/.push.lock`` is held by the process pushing that batch, for the whole push. The kernel
  drops it when that process dies (even by SIGKILL), so an unfinished batch whose lock is free was
  left by a push that died: the next push resumes it. One a live push holds is left alone.
- ``batch.json`` (written durably, before anything is sent to a backend) is the commit point of a
  new batch: its items are the batch's, whatever happens next. The ledger is written after it and
  is read as ``ledger.json`` plus every batch's items, so a crash between the two loses nothing.
- Results are appended in one write and fsynced. A crash mid-append leaves a torn last line: the
  next writer (a pull, under the lock) sets it aside into ``<results>.torn`` and says so; readers
  report it (file and line) instead of failing on it; a bad line elsewhere is an error naming it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

from cumed.atomic import fsync_dir, write_json
from cumed.errors import CumedError
from cumed.store import Store

LOCK_FILE = ".lock"
PUSH_LOCK_FILE = ".push.lock"


def _flock(path: Path, blocking: bool = True):
    """An open file holding an exclusive flock on ``path``, or None when ``blocking`` is False and
    another process holds it. Closing the file (or the process ending) releases the lock."""
    fh = open(path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        fh.close()
        return None
    except BaseException:
        fh.close()
        raise
    return fh


def with_notes(res: dict, notes: list[str]) -> dict:
    """Repairs made on the way (``add_results``) are said on stderr, since the CLI prints only the
    result, and kept in the result under ``repaired``."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if notes:
        res["repaired"] = notes
    return res


def _read_json(path: Path, fix: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CumedError(f"{path} is not valid JSON ({e}); {fix}") from None


class BatchState:
    folder: ClassVar[str]  # "_review"
    letter: ClassVar[str]  # "r": batch ids look like cumed-pretrain.r001
    what: ClassVar[str]  # "review", for error messages
    push_command: ClassVar[str]  # "review push", which prints batch ids
    pull_command: ClassVar[str]  # "review pull", which appends results (and repairs a torn line)
    results_file: ClassVar[str]  # "annotations.jsonl"
    result_type: ClassVar[type]  # built from each JSON line as result_type(**line)
    items_key: ClassVar[str]  # batch.json key holding the batch's item ids (a list, or a dict keyed by id)

    def __init__(self, store: Store, dataset: str):
        self.store, self.dataset = store, dataset
        self.root = store.root / self.folder / dataset
        self.root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def batch_re(cls) -> re.Pattern:
        return re.compile(rf"^(?P<dataset>[a-z0-9][a-z0-9._-]*)\.{cls.letter}(?P<n>[0-9]{{3,}})$")

    @classmethod
    def for_batch(cls, store: Store, batch_id: str):
        m = cls.batch_re().match(batch_id or "")
        if not m:
            raise CumedError(f"bad {cls.what} batch id {batch_id!r}; batch ids look like "
                             f"cumed-pretrain.{cls.letter}001 (printed by {cls.push_command})")
        state = cls(store, m.group("dataset"))
        if not (state.root / batch_id / "batch.json").is_file():
            known = ", ".join(state.batches()) or "none"
            raise CumedError(f"no {cls.what} batch {batch_id} in {state.root}; batches: {known}")
        return state

    # ---- locks ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The dataset's state lock (see the module docstring); not re-entrant."""
        fh = _flock(self.root / LOCK_FILE)
        try:
            yield
        finally:
            fh.close()

    def _claim(self, batch_id: str):
        """The batch's push lock, or None while a live push holds it."""
        (self.root / batch_id).mkdir(parents=True, exist_ok=True)
        return _flock(self.root / batch_id / PUSH_LOCK_FILE, blocking=False)

    # ---- batches and ledger ----------------------------------------------------------------------
    def batches(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "batch.json").is_file())

    def batch(self, batch_id: str) -> dict:
        p = self.root / batch_id / "batch.json"
        return _read_json(p, f"restore it from a backup; without it batch {batch_id} cannot be pulled")

    def save_batch(self, info: dict) -> None:
        (self.root / info["batch"]).mkdir(parents=True, exist_ok=True)
        write_json(self.root / info["batch"] / "batch.json", info, durable=True)

    def item_ids(self, info: dict) -> list[str]:
        return [str(i) for i in info.get(self.items_key) or []]

    def ledger(self) -> dict[str, str]:
        """Item id -> batch id: ``ledger.json`` plus the items of every batch (each batch.json is the
        truth for its own items, so an item is never free again once its batch is saved)."""
        p = self.root / "ledger.json"
        stored = _read_json(p, "delete it and re-run: it is rebuilt from the batch folders") if p.is_file() else {}
        from_batches = {i: b for b in self.batches() for i in self.item_ids(self.batch(b))}
        return {**stored, **from_batches}

    def new_batch_id(self) -> str:
        """The next free id; hold ``lock()`` from here until the batch is saved."""
        pattern = self.batch_re()
        nums = [int(m.group("n")) for m in map(pattern.match, self.batches()) if m]
        return f"{self.dataset}.{self.letter}{(max(nums) + 1 if nums else 1):03d}"

    @contextlib.contextmanager
    def pushing(self, plan: Callable[[str, dict], dict | None]) -> Iterator[tuple[dict | None, bool]]:
        """``with state.pushing(plan) as (info, resumed):`` the batch this push sends, held for the push.

        An unfinished batch no live push holds is resumed (``resumed`` True). Otherwise ``plan(batch_id,
        ledger)`` makes a new batch's info (it may write files into the batch folder first) or returns
        None when nothing is left to queue; the batch is saved, then the ledger, under the dataset lock.
        The caller pushes and saves ``state="pushed"`` inside the ``with``, so no other push takes the
        batch meanwhile.
        """
        claim = None
        try:
            with self.lock():
                info, resumed, claim = self._resumable()
                if info is None:
                    info, claim = self._create(plan)
            yield info, resumed
        finally:
            if claim is not None:
                claim.close()

    def _resumable(self):
        for b in self.batches():
            info = self.batch(b)
            if info.get("state") == "pushed":
                continue
            claim = self._claim(b)
            if claim is None:
                continue  # a live push is sending it
            info = self.batch(b)  # read again under the claim: its push may have just finished
            if info.get("state") != "pushed":
                return info, True, claim
            claim.close()
        return None, False, None

    def _create(self, plan):
        ledger = self.ledger()
        batch_id = self.new_batch_id()
        claim = self._claim(batch_id)
        if claim is None:  # only a process outside this protocol could hold a batch that has no batch.json
            raise CumedError(f"{self.root / batch_id / PUSH_LOCK_FILE} is held by another process; "
                             f"re-run the push when it has finished")
        info, done = None, False
        try:
            info = plan(batch_id, ledger)
            if info is not None:
                self.save_batch(info)  # the commit point: from here these items are this batch's
                write_json(self.root / "ledger.json", {**ledger, **{i: batch_id for i in self.item_ids(info)}},
                           durable=True)
            done = True
        finally:
            if not done or info is None:
                claim.close()
                self._discard(batch_id)  # nothing to queue, or planning failed: no half-made folder
        return info, (claim if info is not None else None)

    def _discard(self, batch_id: str) -> None:
        folder = self.root / batch_id
        if (folder / "batch.json").exists():
            return
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()

    # ---- results -----------------------------------------------------------------------------
    def results_path(self, batch_id: str) -> Path:
        return self.root / batch_id / self.results_file

    def results(self, batch_id: str) -> list[Any]:
        """Every result of the batch. A torn last line is an error that names it and the fix (a pull
        repairs it); so is a damaged line anywhere else."""
        records, torn = self._read_results(batch_id)
        if torn is not None:
            line, _, _ = torn
            raise CumedError(f"{self.results_path(batch_id)} line {line}: torn last record (a pull was "
                             f"interrupted while writing it); run `cumed {self.pull_command} {batch_id}` "
                             f"again: it sets the torn record aside and fetches its annotations again")
        return records

    def _read_results(self, batch_id: str) -> tuple[list[Any], tuple[int, int, bytes] | None]:
        """(results, torn) where torn = (line number, byte offset, bytes) of an unparsable last line
        without a newline (a crash mid-append), else None."""
        p = self.results_path(batch_id)
        if not p.is_file():
            return [], None
        raw = p.read_bytes()
        lines = raw.split(b"\n")
        out, offset = [], 0
        for n, line in enumerate(lines, 1):
            last = n == len(lines)  # the bytes after the last newline (b"" when the file ends with one)
            rec, why = self._parse(line)
            if why is None:
                if rec is not None:
                    out.append(rec)
            elif last:
                return out, (n, offset, line)
            else:
                raise CumedError(
                    f"{p} line {n}: not a valid {self.what} record ({why}); the file was damaged or edited: "
                    f"restore it, or delete that line and run `cumed {self.pull_command} {batch_id}` "
                    f"(it fetches the annotation again)")
            offset += len(line) + 1
        return out, None

    def _parse(self, line: bytes):
        """(record or None for a blank line, None) or (None, why it is not a record)."""
        if not line.strip():
            return None, None
        try:
            obj = json.loads(line.decode("utf-8"))
            if not isinstance(obj, dict):
                return None, f"a JSON {type(obj).__name__}, not an object"
            return self.result_type(**obj), None
        except UnicodeDecodeError as e:
            return None, f"not UTF-8 at byte {e.start}"
        except json.JSONDecodeError as e:
            return None, f"{e.msg} at column {e.colno}"
        except TypeError as e:  # fields missing or unknown
            return None, str(e)

    def add_results(self, batch_id: str, found: Iterable[Any],
                    key: Callable[[Any], str]) -> tuple[list[Any], list[str]]:
        """Append the results whose ``key`` is not in the file yet: (new results, notes).

        Under the dataset lock, so concurrent pulls never add one result twice; a torn last line is
        set aside first (one note says where). The append is one write, fsynced before returning.
        """
        with self.lock():
            notes = self._repair_tail(batch_id)
            have = {key(r) for r in self.results(batch_id)}
            new = []
            for r in found:
                if key(r) not in have:
                    have.add(key(r))
                    new.append(r)
            if new:
                self._append(self.results_path(batch_id),
                             "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in new))
        return new, notes

    def _repair_tail(self, batch_id: str) -> list[str]:
        p = self.results_path(batch_id)
        records, torn = self._read_results(batch_id)
        if torn is None:
            size = p.stat().st_size if p.is_file() else 0
            if size and not p.read_bytes().endswith(b"\n"):
                self._append(p, "\n")  # a complete last record whose newline was lost: end it
            return []
        line, offset, data = torn
        aside = p.with_name(p.name + ".torn")
        self._append(aside, data.decode("utf-8", "backslashreplace") + "\n")  # kept first, then cut
        with open(p, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())
        return [f"{p} line {line}: set aside a torn last record left by an interrupted pull "
                f"({len(data)} bytes, kept in {aside.name}); its annotations are fetched again"]

    @staticmethod
    def _append(path: Path, text: str) -> None:
        new = not path.exists()
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if new:
            fsync_dir(path.parent)
