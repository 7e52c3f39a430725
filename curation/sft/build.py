"""Build a ``conversations`` dataset from a recipe (``kind: conversations``, e.g. ``datasets/cumed-sft.yaml``).

``build_conversations(recipe_path, raw, store) -> (DatasetVersion, stats)``. Order of the steps:

1. read every enabled source with its conversation reader (``curation.sft.readers``): records
   that do not parse are removed by ``reader`` with ``read_error: <file> line <n>: ...``;
2. roles: a record whose turns cannot be attributed (unknown marker, text before the first
   inline marker) or whose turns are not a valid dialogue (``curation.sft.roles.validate``)
   is removed by ``roles`` with the exact reason;
3. per turn: ``Normalize`` then ``PIIRedactor`` (the pretraining steps, applied to each
   ``content``; roles and turn order are never touched);
4. ``department``: selection by source field / CMeKG lexicon / classifier score
   (``curation.sft.department``); the others are removed with ``not_selected: ...``;
5. ``decontaminate``: the pretraining ``Decontaminate`` index over the whole dialogue text
   (``eval_overlap: <set>:<item>``), then near-copies of an evaluation item
   (``find_duplicates`` with the items as reference: ``eval_near_copy: <set>:<item>``);
6. ``dedup``: exact and near-duplicate dialogues removed with the id they duplicate
   (``exact_duplicate: <id>`` / ``near_duplicate: <id> (J=0.83)``, column ``duplicate_of``);
7. ``splits``: train/validation/test by a stable hash of the prompt's near-duplicate cluster
   (``curation.sft.splits``);
8. ``pack`` (optional, the paper's option): short single-turn pairs concatenated with a
   boundary marker up to a token budget (``curation.sft.pack``).

Which steps run: ``resolved_steps`` (the recipe's ``steps`` mapping; a step listed ``false`` or
null does not run). ``department`` and ``splits`` always run (``department`` with ``select: all``,
i.e. keeping every dialogue, when the recipe does not list it); ``pack`` runs when ``enabled``. The
resolved list is printed before anything runs and recorded in the lineage (``steps``), in the
form of the documents build (``curation.build.steps.resolved_steps``).

Every input dialogue is kept or removed: per source, ``read == kept dialogues + removed`` is
checked before publishing (``CumedError`` otherwise). The lineage names every file read besides
the sources (``side_inputs``: the CMeKG lexicon, the evaluation sets, a tokenizer, with sha256)
and the package versions (``dependencies``); both are in its ``config_hash``.

Why plain streaming Python and not a datatrove pipeline (the pretraining build): the records
are read with datatrove readers (``reader.run()``), but every step after reading works on the
list of turns, not on ``doc.text`` (datatrove's filters and writers are text-centric), and the
steps that decide the output (dedup keepers, prompt clusters for the splits, packing) are
global over the whole, small set (~25k dialogues, ~20 MB: the full build runs in well under a
minute on 2 cores). Sharding would need the three stages of ``curation.build`` for no gain at
this size. When SFT sources grow to millions of dialogues, steps 1-5 move into a datatrove
stage A with the messages kept in metadata and steps 6-7 into the staged dedup of
``curation.dedup.near``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa

from curation.build.side_inputs import dependency_versions, resolve, tokenizer_files
from curation.dedup import find_duplicates
from cumed.errors import CumedError
from cumed.lineage import build_lineage
from cumed.eval_sets import load_eval_set
from curation.recipe import load_recipe
from cumed.schemas import MESSAGE
from curation.sft.department import DepartmentSelector, selection_stats
from curation.sft.pack import pack_single_turn
from curation.sft.readers import make_conversation_reader
from curation.sft.roles import dialogue_text, user_text, validate
from curation.sft.splits import SPLITS, clusters, split_of
from cumed.store import DatasetVersion, Store
from curation.tokens import TokenCounter

# The conversations build runs in the calling process (see above): its lineage says so.
IN_PROCESS = "in-process"
CODE_PACKAGES = ("cumed", "curation")
# The steps in the order they run (``pack`` last: it works on the finished rows).
STEP_ORDER = ("normalize", "pii", "department", "decontaminate", "dedup", "splits", "pack")
STEP_KEYS = set(STEP_ORDER)
NEAR_THRESHOLD = 0.75  # decontaminate's near-copy check (eval_near_copy) unless the recipe sets near_threshold

ROW_SCHEMA = pa.schema([
    ("id", pa.string()), ("messages", pa.list_(MESSAGE)), ("source", pa.string()), ("department", pa.string()),
    ("n_turns", pa.int64()), ("split", pa.string()), ("metadata", pa.string()),
])
REMOVED_SCHEMA = ROW_SCHEMA.append(pa.field("removed_by", pa.string())).append(pa.field("reason", pa.string())) \
    .append(pa.field("duplicate_of", pa.string()))
_META_SKIP = {"messages", "source", "department", "read_error", "role_error", "file_path"}


class _Dialogue:
    __slots__ = ("id", "source", "department", "messages", "meta", "removed_by", "reason", "duplicate_of", "split")

    def __init__(self, doc):
        self.id = doc.id
        self.source = doc.metadata["source"]
        self.department = str(doc.metadata.get("department") or "")
        self.messages = doc.metadata.get("messages") or []
        self.meta = {k: v for k, v in doc.metadata.items() if k not in _META_SKIP}
        self.removed_by = self.reason = self.duplicate_of = None
        self.split = ""

    def remove(self, step: str, reason: str, duplicate_of: str | None = None) -> None:
        self.removed_by, self.reason, self.duplicate_of = step, reason, duplicate_of

    @property
    def text(self) -> str:
        return dialogue_text(self.messages)

    def row(self) -> dict:
        row = {"id": self.id, "messages": [{"role": m["role"], "content": m["content"]} for m in self.messages],
               "source": self.source, "department": self.department, "n_turns": len(self.messages),
               "split": self.split, "metadata": json.dumps(self.meta, ensure_ascii=False, sort_keys=True, default=str)}
        if self.removed_by:
            row.update(removed_by=self.removed_by, reason=self.reason, duplicate_of=self.duplicate_of or "")
        return row


def _progress(it, desc: str, enabled: bool, total=None):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=desc, total=total, file=sys.stderr, unit="dlg", leave=False)


def resolved_steps(recipe) -> list[dict]:
    """What the conversations build runs, in its order, with the options it runs them with:
    ``[{"step": "normalize", "options": {}}, ..., {"step": "splits", "options": {...}}]``, the
    form of ``curation.build.steps.resolved_steps``.

    A step runs when the recipe lists it (``Recipe.step``: ``{}``/``true`` for its defaults; ``false``
    or null: not run), except ``department`` and ``splits``, which always run (unlisted:
    ``{"select": "all"}`` and ``{}``, their defaults), and ``pack``, which runs when ``enabled``.
    The evaluation sets and the near-copy threshold of ``decontaminate`` appear with their defaults."""
    from curation.steps.decontaminate import DEFAULT_SETS

    unknown = set(recipe.steps) - STEP_KEYS
    if unknown:
        raise CumedError(f"unknown step(s) {', '.join(sorted(unknown))} in {recipe.path}; allowed: {', '.join(sorted(STEP_KEYS))}")
    out = []
    for name in STEP_ORDER:
        options = recipe.step_options(name)
        if options is None and name in ("department", "splits"):
            options = {"select": "all"} if name == "department" else {}
        if options is None:
            continue
        if name == "pack" and not options.get("enabled"):
            continue
        if name == "decontaminate":
            options.setdefault("eval_sets", list(DEFAULT_SETS))
            options.setdefault("near_threshold", NEAR_THRESHOLD)
        out.append({"step": name, "options": options})
    return out


def _transforms(steps: dict):
    from curation.steps.normalize import build_normalize
    from curation.steps.pii import build_pii

    out = []
    if "normalize" in steps:
        out.append(build_normalize(steps["normalize"]))
    if "pii" in steps:
        out.append(build_pii(steps["pii"]))
    return out


def read_sources(recipe, progress: bool = False) -> tuple[list[_Dialogue], Counter]:
    """Every record of every enabled source as a ``_Dialogue`` (read errors included)."""
    from loguru import logger

    logger.disable("datatrove")  # per-file INFO lines would drown the progress bar
    dialogues, read = [], Counter()
    try:
        for s in recipe.sources:
            if not s.enabled:
                continue
            spec = {"name": s.name, "reader": s.reader, "path": s.path, "category": s.category,
                    "department": s.department, "license": s.license, "options": s.options}
            try:
                reader = make_conversation_reader(spec, str(Path(recipe.raw).resolve()))
                for doc in _progress(reader.run(), f"read {s.name}", progress):
                    d = _Dialogue(doc)
                    read[s.name] += 1
                    if doc.metadata.get("read_error"):
                        d.remove("reader", f"read_error: {doc.metadata['read_error']}")
                    elif doc.metadata.get("role_error"):
                        d.remove("roles", doc.metadata["role_error"])
                    dialogues.append(d)
            except (ValueError, FileNotFoundError, UnicodeDecodeError) as e:
                raise CumedError(f"{recipe.path}: source {s.name}: {e}") from e
    finally:
        logger.enable("datatrove")
    return dialogues, read


def build_conversations(recipe_path, raw, store, *, progress: bool = True) -> tuple[DatasetVersion, dict]:
    """Read, clean, validate, select, decontaminate, dedup, split and publish a conversations recipe.

    ``store``: a ``Store`` or a store root. The build is single-process (see the module docstring).
    Returns the published version and its stats.
    """
    recipe = load_recipe(recipe_path, raw)
    if recipe.kind != "conversations":
        raise CumedError(f"{recipe.path} is kind {recipe.kind!r}; build_conversations needs kind: conversations")
    resolved = resolved_steps(recipe)  # what runs, and nothing else
    if progress:
        from curation.build.progress import print_steps

        print_steps(recipe.name, resolved)
    store = store if isinstance(store, Store) else Store(store)
    steps = {e["step"]: dict(e["options"]) for e in resolved}
    raw = Path(recipe.raw).resolve()

    # 1-2. read + roles ------------------------------------------------------------------------
    dialogues, read = read_sources(recipe, progress)
    live = [d for d in dialogues if not d.removed_by]

    # 3. per-turn transforms, then validation (a turn emptied by cleaning is an empty turn) ----
    transforms = _transforms(steps)
    changed = Counter()
    for d in _progress(live, "clean turns", progress):
        for m in d.messages:
            for t in transforms:
                new = t.transform(m["content"])
                if new != m["content"]:
                    changed[t.name] += 1
                    m["content"] = new
    for d in live:
        reason = validate(d.messages)
        if reason:
            d.remove("roles", reason)
    live = [d for d in live if not d.removed_by]

    # 4. department -----------------------------------------------------------------------------
    dept_cfg = dict(steps["department"])
    selector = DepartmentSelector(raw=raw, **dept_cfg)
    side_files = selector.side_files()  # every file a step reads besides the sources, for the lineage
    evidence = []
    for d in _progress(live, "department", progress):
        ev = selector.methods_for(d.messages, {**d.meta, "department": d.department})
        evidence.append(ev)
        if ev:
            d.meta["department_methods"] = ev
        if not selector.selected(ev):
            d.remove("department", f"not_selected: {selector.label}")
    dept_stats = selection_stats(evidence, selector.methods)
    dept_stats.update(select=selector.label, require=selector.require, lexicon_terms=len(selector.terms or ()),
                      kept=sum(1 for d in live if not d.removed_by))
    live = [d for d in live if not d.removed_by]

    # 5. decontamination ------------------------------------------------------------------------
    decon_cfg = steps.get("decontaminate")
    if decon_cfg is not None:
        from curation.steps.decontaminate import DEFAULT_SETS, Decontaminate

        decon_cfg = dict(decon_cfg)
        sets = decon_cfg.pop("eval_sets", list(DEFAULT_SETS))
        near_t = decon_cfg.pop("near_threshold", NEAR_THRESHOLD)
        step = Decontaminate(sets, raw=raw, **decon_cfg)
        side_files += Decontaminate.side_files(sets, raw)
        for i in range(0, len(live), 512):
            batch = live[i : i + 512]
            for d, item in zip(batch, step.contaminating_items([d.text for d in batch])):
                if item:
                    d.meta["eval_item"] = item
                    d.remove("decontaminate", f"eval_overlap: {item}")
        live = [d for d in live if not d.removed_by]
        if near_t:
            ref = [(f"{name}:{i}", t) for name in sets for i, t in load_eval_set(name, raw)]
            refs = {r[0] for r in ref}
            by_id = {d.id: d for d in live}
            for dec in find_duplicates([(d.id, d.text) for d in live], reference=ref, threshold=near_t):
                if dec.duplicate_of in refs:
                    d = by_id[dec.id]
                    d.meta["eval_item"] = dec.duplicate_of
                    d.remove("decontaminate", f"eval_near_copy: {dec.duplicate_of} (J={dec.similarity:.2f})",
                             duplicate_of=dec.duplicate_of)
            live = [d for d in live if not d.removed_by]

    # 6. dedup ------------------------------------------------------------------------------------
    dedup_cfg = steps.get("dedup")
    if dedup_cfg is not None:
        by_id = {d.id: d for d in live}
        docs = [(d.id, d.text, {"synthetic": bool(d.meta.get("synthetic")), "source": d.source}) for d in live]
        for dec in find_duplicates(docs, **dedup_cfg):
            by_id[dec.id].remove("dedup", f"{dec.kind}_duplicate: {dec.duplicate_of} (J={dec.similarity:.2f})",
                                 duplicate_of=dec.duplicate_of)
        live = [d for d in live if not d.removed_by]

    # 7. splits -----------------------------------------------------------------------------------
    split_cfg = dict(steps["splits"])
    ratios = {"validation": float(split_cfg.get("validation", 0.05)), "test": float(split_cfg.get("test", 0.05))}
    seed = str(split_cfg.get("seed", recipe.name))
    cluster_of = clusters([(d.id, user_text(d.messages)) for d in live], threshold=float(split_cfg.get("cluster_threshold", 0.6)))
    for d in live:
        d.meta["cluster"] = cluster_of[d.id]
        d.split = split_of(cluster_of[d.id], seed=seed, **ratios)
    members = Counter(cluster_of.values())
    split_stats = {**ratios, "seed": seed, "cluster_threshold": float(split_cfg.get("cluster_threshold", 0.6)),
                   "clusters": len(members), "multi_member_clusters": sum(1 for v in members.values() if v > 1),
                   "dialogues_in_multi_member_clusters": sum(v for v in members.values() if v > 1),
                   "rows": {s: sum(1 for d in live if d.split == s) for s in SPLITS}}

    # 8. rows (+ packing) -------------------------------------------------------------------------
    kept_rows = sorted((d.row() for d in live), key=lambda r: r["id"])
    pack_cfg = dict(steps.get("pack") or {})  # listed only when enabled
    pack_stats = {"enabled": bool(pack_cfg.get("enabled"))}
    tokens = TokenCounter(recipe.tokenizer)
    if pack_cfg.get("enabled"):
        kept_rows, ps = pack_single_turn(kept_rows, max_tokens=int(pack_cfg.get("max_tokens", 1024)),
                                         boundary=str(pack_cfg.get("boundary", "<|qa_boundary|>")), counter=tokens)
        pack_stats.update(ps)
    removed_rows = sorted((d.row() for d in dialogues if d.removed_by), key=lambda r: r["id"])

    # accounting + stats --------------------------------------------------------------------------
    stats = collect_stats(recipe, read, kept_rows, removed_rows, tokens)
    stats.update(department=dept_stats, splits=split_stats, pack=pack_stats, changed_turns=dict(changed))
    inputs = recipe.inputs()
    side = resolve(side_files + tokenizer_files(recipe.tokenizer, raw))
    deps = dependency_versions(packages_used(recipe, selector))
    # The side files and versions decide the rows as much as the sources do (a changed
    # evaluation set removes other dialogues): they are in the config hash and the lineage.
    key = {"inputs": [i["sha256"] for i in inputs], "side_inputs": side, "dependencies": deps}
    lineage = build_lineage(recipe=recipe.lineage(), config_hash=recipe.config_hash(key),
                            code_packages=CODE_PACKAGES, inputs=inputs, executor=IN_PROCESS,
                            side_inputs=side, dependencies=deps, steps=resolved)
    dv = store.publish(recipe.name, pa.Table.from_pylist(kept_rows, schema=ROW_SCHEMA), kind="conversations",
                       removed=pa.Table.from_pylist(removed_rows, schema=REMOVED_SCHEMA),
                       stats=stats, lineage=lineage, card=render_card(recipe, stats, resolved))
    return dv, stats


def packages_used(recipe, selector: DepartmentSelector) -> list[str]:
    """Third-party packages whose version can change this build's rows or stats: datatrove's
    readers, pyarrow, OpenCC and numpy (normalisation, canonical form, near-duplicate hashing),
    pyahocorasick for the department lexicon, tokenizers for a recipe's tokenizer file."""
    out = ["datatrove", "pyarrow", "numpy", "opencc"]
    if "lexicon" in selector.methods:
        out.append("ahocorasick")
    if recipe.tokenizer:
        out.append("tokenizers")
    return out


def _members(row: dict) -> int:
    if '"packed_ids"' in row.get("metadata", ""):
        return len(json.loads(row["metadata"])["packed_ids"])
    return 1


def collect_stats(recipe, read: Counter, kept_rows: list[dict], removed_rows: list[dict], tokens: TokenCounter) -> dict:
    """Per source: read, kept (dialogues), removed per reason, turns, chars, tokens; raises
    ``CumedError`` when a source's read count differs from kept + removed."""
    per: dict[str, dict] = {}
    for s in recipe.sources:
        if s.enabled:
            per[s.name] = {"category": s.category, "license": s.license, "read": read.get(s.name, 0), "kept": 0,
                           "kept_rows": 0, "removed": 0, "removed_by_reason": Counter(), "turns": 0, "chars": 0,
                           "tokens": 0, "splits": Counter()}
    for r in kept_rows:
        p = per[r["source"]]
        p["kept"] += _members(r)
        p["kept_rows"] += 1
        p["turns"] += r["n_turns"]
        p["chars"] += sum(len(m["content"]) for m in r["messages"])
        p["tokens"] += tokens.count_many([m["content"] for m in r["messages"]])
        p["splits"][r["split"]] += 1
    total_reason = Counter()
    for r in removed_rows:
        p = per[r["source"]]
        p["removed"] += 1
        code = f"{r['removed_by']}/{r['reason'].split(':')[0]}"
        p["removed_by_reason"][code] += 1
        total_reason[code] += 1
    bad = [f"{n}: read {p['read']} != kept {p['kept']} + removed {p['removed']}" for n, p in per.items()
           if p["read"] != p["kept"] + p["removed"]]
    if bad:
        raise CumedError("dialogues lost in the build (nothing published): " + "; ".join(bad))
    for p in per.values():
        p["removed_by_reason"] = dict(sorted(p["removed_by_reason"].items()))
        p["splits"] = dict(sorted(p["splits"].items()))
    return {
        "tokenizer": tokens.name,
        "sources": per,
        "read": sum(p["read"] for p in per.values()),
        "kept": sum(p["kept"] for p in per.values()),
        "kept_rows": len(kept_rows),
        "removed": len(removed_rows),
        "removed_by_reason": dict(sorted(total_reason.items(), key=lambda kv: -kv[1])),
    }


def render_card(recipe, stats: dict, steps: list[dict] | None = None) -> str:
    """The version's README.md: the recipe's card text (``datasets/<name>.md``) + this build's numbers
    (and the decontamination rule it applied: ``steps`` = ``resolved_steps(recipe)``)."""
    from curation.build.card import decontamination_section, removed_by

    steps = resolved_steps(recipe) if steps is None else steps
    lines = []
    card = recipe.path.with_suffix(".md")
    if card.is_file():
        lines += [card.read_text(encoding="utf-8").rstrip(), "", "---", ""]
    lines += [f"# This build: {recipe.name}", "",
              f"Tokens counted with {stats['tokenizer']}.", "",
              "| source | license | read | kept | removed | turns | chars | tokens | train/validation/test |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, s in stats["sources"].items():
        sp = "/".join(str(s["splits"].get(k, 0)) for k in SPLITS)
        lines.append(f"| {name} | {s['license']} | {s['read']:,} | {s['kept']:,} | {s['removed']:,} | {s['turns']:,} | "
                     f"{s['chars']:,} | {s['tokens']:,} | {sp} |")
    lines += ["", "## Removal reasons", "", "| removed by / reason | rows |", "|---|---:|"]
    for k, v in stats["removed_by_reason"].items():
        lines.append(f"| {k} | {v:,} |")
    dep = stats.get("department") or {}
    if dep:
        lines += ["", f"## Department selection ({dep.get('select')}, require {dep.get('require')})", "",
                  f"Candidates {dep.get('candidates', 0):,}; selected by " +
                  ", ".join(f"{k} {v:,}" for k, v in dep.get("selected_by", {}).items()) +
                  "; overlaps " + ", ".join(f"{k} {v:,}" for k, v in dep.get("overlap", {}).items()) +
                  f"; union {dep.get('union', 0):,}; kept {dep.get('kept', 0):,}."]
    decon = next((e["options"] for e in steps if e["step"] == "decontaminate"), None)
    if decon is not None:
        lines += [""] + decontamination_section(decon, removed_by(stats, "decontaminate"))[:-1]
    lines += ["", f"Recipe: `{recipe.lineage()['path']}` (sha256 `{recipe.sha256[:16]}`)", ""]
    return "\n".join(lines)


__all__ = ["build_conversations", "collect_stats", "read_sources", "render_card", "resolved_steps"]
