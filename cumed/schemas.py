"""The row schemas of the store (contract: docs/design.md) and their validation.

Extra columns are allowed; the named columns must exist with a compatible type. Validation
casts only where it loses nothing (``large_string`` -> ``string``, ``int32`` -> ``int64``) and
otherwise names the column, the type it found, the type expected and the fix.
"""

from __future__ import annotations

import pyarrow as pa

from cumed.errors import CumedError

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
RESPONSE = pa.struct([("response_id", pa.string()), ("text", pa.string()), ("model", pa.string())])

SCHEMAS: dict[str, pa.Schema] = {
    "documents": pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("source", pa.string()),
            ("category", pa.string()),
            ("department", pa.string()),
            ("n_chars", pa.int64()),
            ("metadata", pa.string()),
        ]
    ),
    "conversations": pa.schema(
        [
            ("id", pa.string()),
            ("messages", pa.list_(MESSAGE)),
            ("source", pa.string()),
            ("department", pa.string()),
            ("n_turns", pa.int64()),
            ("split", pa.string()),
        ]
    ),
    "rankings": pa.schema(
        [
            ("prompt_id", pa.string()),
            ("prompt", pa.string()),
            ("responses", pa.list_(RESPONSE)),
            # Ties are groups: [["r2"], ["r1", "r3"], ["r4"]] means r2 best, r1 = r3, then r4.
            ("ranking", pa.list_(pa.list_(pa.string()))),
            ("annotator", pa.string()),
            ("batch", pa.string()),
        ]
    ),
    "preferences": pa.schema(
        [
            ("prompt_id", pa.string()),
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("chosen_rank", pa.int64()),
            ("rejected_rank", pa.int64()),
            ("margin", pa.float64()),
            ("split", pa.string()),
        ]
    ),
    # Model outputs (`cumed generate`): one row per (prompt, model, sample). The prompt is the
    # message history the model saw; the row key is an opaque id (stable over prompt, model, sample)
    # so a ranking task can show responses without naming their model.
    "responses": pa.schema(
        [
            ("response_id", pa.string()),
            ("prompt_id", pa.string()),
            ("prompt", pa.list_(MESSAGE)),
            ("model", pa.string()),
            ("sample", pa.int64()),
            ("response", pa.string()),
            ("finish_reason", pa.string()),
            ("params", pa.string()),  # sampling parameters as JSON (temperature, top_p, max_tokens, seed)
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
        ]
    ),
    # Model-scored labels (`cumed annotate`): one row per document a model graded with a rubric
    # (0-5 and a reason); `label` is keep|discard at the rubric's threshold. The texts stay in the
    # documents version the lineage names as parent.
    "labels": pa.schema(
        [
            ("id", pa.string()),
            ("source", pa.string()),
            ("score", pa.float64()),
            ("label", pa.string()),
            ("reason", pa.string()),
            ("model", pa.string()),
            ("rubric", pa.string()),
        ]
    ),
}
KINDS = tuple(SCHEMAS)
# Versions of files rather than rows (a model artifact): same protocol, no schema.
FILE_KINDS = ("model",)
REMOVAL_FIELDS = [pa.field("removed_by", pa.string()), pa.field("reason", pa.string())]
# The first column is the row key: dedup, diff and review decisions refer to rows by it.
KEY_COLUMN = {"documents": "id", "conversations": "id", "rankings": "prompt_id", "preferences": "prompt_id",
              "responses": "response_id", "labels": "id"}


def check_kind(kind: str) -> str:
    if kind not in SCHEMAS:
        raise CumedError(f"unknown dataset kind {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def check_file_kind(kind: str) -> str:
    if kind not in FILE_KINDS:
        raise CumedError(f"unknown file-version kind {kind!r}; use one of {', '.join(FILE_KINDS)}")
    return kind


def schema_for(kind: str, removed: bool = False) -> pa.Schema:
    schema = SCHEMAS[check_kind(kind)]
    if removed:
        for f in REMOVAL_FIELDS:
            schema = schema.append(f)
    return schema


_SAFE_CASTS = {
    (pa.large_string(), pa.string()),
    (pa.int32(), pa.int64()),
    (pa.int16(), pa.int64()),
    (pa.int8(), pa.int64()),
    (pa.float32(), pa.float64()),
    (pa.int64(), pa.float64()),
    (pa.int32(), pa.float64()),
}


def _compatible(found: pa.DataType, expected: pa.DataType) -> bool:
    if found.equals(expected) or (found, expected) in _SAFE_CASTS:
        return True
    if pa.types.is_null(found):
        return True  # an all-null column (e.g. empty department) casts to anything
    list_like = (pa.types.is_list(found) or pa.types.is_large_list(found)) and pa.types.is_list(expected)
    if list_like:
        return _compatible(found.value_type, expected.value_type)
    if pa.types.is_struct(found) and pa.types.is_struct(expected):
        names = {found.field(i).name: found.field(i).type for i in range(found.num_fields)}
        return all(
            expected.field(i).name in names and _compatible(names[expected.field(i).name], expected.field(i).type)
            for i in range(expected.num_fields)
        )
    return False


def conform(table: pa.Table, kind: str, removed: bool = False, where: str = "") -> pa.Table:
    """Return ``table`` with the kind's columns first, in contract order and types.

    Raises ``CumedError`` naming the first missing or mistyped column.
    """
    expected = schema_for(kind, removed)
    place = f" in {where}" if where else ""
    columns, fields = [], []
    for field in expected:
        if field.name not in table.column_names:
            raise CumedError(
                f"column {field.name!r} is missing{place} ({kind} schema{', removed rows' if removed else ''}); "
                f"add it as {field.type} (columns present: {', '.join(table.column_names)})"
            )
        col = table.column(field.name)
        if not _compatible(col.type, field.type):
            raise CumedError(
                f"column {field.name!r} has type {col.type}, expected {field.type}{place} ({kind} schema); "
                f"cast it before publishing"
            )
        if not col.type.equals(field.type):
            col = col.cast(field.type)
        columns.append(col)
        fields.append(field)
    for name in table.column_names:
        if name not in expected.names:
            columns.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
