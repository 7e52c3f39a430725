"""A published version as readers see it: manifest, files, readers for every consumer, its card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cumed.errors import CumedError



@dataclass
class VerifyResult:
    ref: str
    ok: bool
    checked: int
    problem: str = ""
    file: str = ""

    def to_dict(self) -> dict:
        return {"ref": self.ref, "ok": self.ok, "files_checked": self.checked, "problem": self.problem, "file": self.file}


class DatasetVersion:
    """One published version: its manifest, files, and readers for every consumer."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest

    name = property(lambda self: self.manifest["name"])
    version = property(lambda self: int(self.manifest["version"]))
    kind = property(lambda self: self.manifest["kind"])
    ref = property(lambda self: f"{self.name}@{self.version}")
    rows = property(lambda self: int(self.manifest["rows"]))
    removed_rows = property(lambda self: int(self.manifest["removed_rows"]))
    content_hash = property(lambda self: self.manifest["content_hash"])

    def __repr__(self) -> str:
        return f"DatasetVersion({self.ref}, kind={self.kind}, rows={self.rows}, removed={self.removed_rows})"

    def files(self, part: str = "data") -> list[Path]:
        return [self.path / f["path"] for f in self.manifest["files"] if f["path"].startswith(part + "/")]

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    def _schema(self, part: str) -> pa.Schema | None:
        files = self.files(part)
        return pq.read_schema(files[0]) if files else None

    def to_arrow(self, part: str = "data", columns: list[str] | None = None) -> pa.Table:
        files = self.files(part)
        if not files:
            from cumed.schemas import schema_for

            schema = schema_for(self.kind, removed=(part == "removed"))
            return schema.empty_table() if columns is None else schema.empty_table().select(columns)
        return pa.concat_tables(pq.read_table(f, columns=columns) for f in files)

    def to_pandas(self, part: str = "data", columns: list[str] | None = None):
        return self.to_arrow(part, columns).to_pandas()

    def to_hf(self, part: str = "data"):
        """A Hugging Face ``datasets.Dataset`` over the version's Parquet files (memory-mapped cache)."""
        try:
            import datasets
        except ImportError as e:  # pragma: no cover - depends on the install
            raise CumedError("to_hf() needs Hugging Face datasets: pip install 'cumed[hf]'") from e
        files = [str(f) for f in self.files(part)]
        if not files:
            return datasets.Dataset.from_dict({n: [] for n in self.to_arrow(part).column_names})
        return datasets.load_dataset("parquet", data_files=files, split="train")

    def iter_batches(self, part: str = "data", batch_size: int = 8192, columns: list[str] | None = None):
        """Stream record batches: memory stays bounded by one row group, whatever the size."""
        for f in self.files(part):
            yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns)

    def card(self) -> str:
        p = self.path / "README.md"
        return p.read_text(encoding="utf-8") if p.exists() else ""



def default_card(manifest: dict) -> str:
    """A minimal dataset card; recipes replace it with a full one."""
    lines = [
        f"# {manifest['name']} v{manifest['version']}",
        "",
        f"- kind: {manifest['kind']}",
        f"- rows: {manifest['rows']:,} kept, {manifest['removed_rows']:,} removed",
        f"- created: {manifest['created_at']}",
        f"- content hash: `{manifest['content_hash']}`",
    ]
    parents = manifest["lineage"].get("parents") or []
    if parents:
        lines.append(f"- parents: {', '.join(parents)}")
    return "\n".join(lines) + "\n"


