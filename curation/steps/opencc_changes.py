"""Which texts an OpenCC conversion can change, read from the conversion's own dictionaries.

``Normalize`` converts Traditional to Simplified with OpenCC (``t2s``). On Simplified text, which
is nearly all of a Chinese medical corpus, the conversion is a no-op that still costs ~30 ns a
character (a dictionary match tried at every position): ~4 s a million QA records. A text
that holds none of the characters below is known to come out unchanged, so only the others
are converted.

Why that is exact: OpenCC cuts a text into dictionary matches and unmatched characters, writes
each match's first value and copies each unmatched character. The output differs from the input
only where a key whose first value is not the key itself occurs in the text. Every such key is
given one of its characters (``_sentinel``), and a text holding no sentinel holds no such key.
The dictionaries come from the config file (its ``normalization`` and ``conversion_chain``
entries, groups included) and are read with the ``opencc_dict`` tool the package ships. Where
any of that cannot be done (another OpenCC build, a text-format dictionary missing), there is no
table and every text is converted, as before: slower, never different.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from curation.compiled import njit

MAX_CODE_POINT = 0x110000


def may_change(texts: list[str], table: np.ndarray, joined: str | None = None, sep: str = "") -> np.ndarray:
    """Per text, whether it holds a character marked in ``table`` (``changing_table``).
    ``joined``: ``sep.join(texts)`` where the caller has it already (a chunk's texts are ~100 MB
    at 250k records: not joined twice)."""
    from curation.steps.normalize_scan import spans

    if joined is None:
        joined, sep = "".join(texts), ""
    cps, starts, ends = spans(texts, joined, sep)
    return _any_marked(cps, ends - starts, len(sep), table)


@njit(cache=True, nogil=True)
def _any_marked(cp, lens, gap, table):  # pragma: no cover - compiled
    out = np.zeros(len(lens), dtype=np.bool_)
    start = 0
    for t in range(len(lens)):
        for i in range(start, start + lens[t]):
            if table[cp[i]]:
                out[t] = True
                break
        start += lens[t] + gap
    return out


@lru_cache(maxsize=8)
def changing_table(config: str) -> np.ndarray | None:
    """A bool per code point: True for the sentinels of ``config`` (``changing_chars``); None where
    the dictionaries cannot be read (then every text must be converted)."""
    chars = changing_chars(config)
    if chars is None:
        return None
    table = np.zeros(MAX_CODE_POINT, dtype=np.bool_)
    table[[ord(c) for c in chars]] = True
    return table


def changing_chars(config: str) -> frozenset[str] | None:
    """The sentinel characters of an OpenCC config (``t2s``, ``t2s.json`` or a path to one)."""
    try:
        entries = [entry for path in _dictionary_files(_config_path(config)) for entry in _read_dictionary(path)]
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        return None
    return _sentinels(entries)


def _sentinels(entries: list[tuple[str, str]]) -> frozenset[str]:
    """One character per changing key: a one-character key is its own; a longer key (a phrase)
    needs none when one of its characters is already a sentinel, else the first character where
    it and its value differ (any of its characters would do: the whole key must be in the text)."""
    changing = [(key, value) for key, value in entries if key != value]
    chars = {key for key, _ in changing if len(key) == 1}
    for key, value in changing:
        if len(key) > 1 and not chars.intersection(key):
            chars.add(_sentinel(key, value))
    return frozenset(chars)


def _sentinel(key: str, value: str) -> str:
    return next((k for k, v in zip(key, value) if k != v), key[0])


def _config_path(config: str) -> Path:
    import opencc

    name = config if config.endswith(".json") else f"{config}.json"
    path = Path(name)
    if path.is_file():
        return path
    return Path(opencc.__file__).parent / "clib" / "share" / "opencc" / name


def _dictionary_files(config: Path) -> list[Path]:
    spec = json.loads(config.read_text(encoding="utf-8"))
    files: list[Path] = []

    def collect(d: dict) -> None:
        if d["type"] == "group":
            for sub in d["dicts"]:
                collect(sub)
        else:
            files.append(config.parent / d["file"])

    for step in [*spec.get("normalization", []), *spec["conversion_chain"]]:
        collect(step["dict"])
    return files


def _read_dictionary(path: Path) -> list[tuple[str, str]]:
    """(key, first value) of each entry of an ``.ocd2`` (through ``opencc_dict``) or text dictionary."""
    if path.suffix == ".ocd2":
        import opencc

        tool = Path(opencc.__file__).parent / "clib" / "bin" / "opencc_dict"
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "dict.txt"
            subprocess.run([str(tool), "-i", str(path), "-o", str(out), "-f", "ocd2", "-t", "text"],
                           check=True, capture_output=True, timeout=60)
            text = out.read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, values = line.split("\t", 1)
        entries.append((key, values.split(" ")[0]))
    return entries
