"""Pairwise rubric judge (paper Table 2): which of two answers is better, per dimension.

For one prompt and answers A and B the judge is asked twice, A/B and then B/A (positions swapped),
and must reply JSON ``{"relevance": "A"|"B"|"tie", "expertise": ..., "experience": ...}`` where
"A"/"B" are POSITIONS. The second reply is mapped back to the answers, then per dimension:

* both orders name the same answer        -> that answer wins
* both say tie                            -> draw
* the verdict flips with the order        -> draw (position bias)
* one order names an answer, the other tie -> draw. Decision: an answer wins only if it wins in
  both orders; a half win is not evidence enough against a possible position bias.

Backends: ``OpenAIBackend`` (any OpenAI-compatible ``/v1/chat/completions``; base URL, model and key
from arguments or ``CUMED_JUDGE_BASE_URL``, ``CUMED_JUDGE_MODEL``, ``CUMED_JUDGE_API_KEY``; the key
is never logged, stored or put in results) and ``TransformersBackend`` (a local causal LM:
chat template if the tokenizer has one, greedy generation, the reply parsed like any other).

Each asked order is cached in ``$CUMED_CACHE/judge/judgments.sqlite`` (default
``~/.cache/cumed/judge``) under sha256(prompt, first answer, second answer, judge model, rubric
version), so a re-run makes zero requests. Only parsed verdicts are cached. Transport failures
(5xx, 429, timeouts, connection errors) are retried with exponential backoff; a reply that does not
parse is asked again; what still fails is reported as ``invalid`` with its item id and reason;
no item is dropped. Token use is taken from the API's ``usage`` and priced per 1k tokens.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cumed.errors import CumedError
from cumed.hashing import sha256_text

log = logging.getLogger(__name__)

RUBRIC_VERSION = "table2-v1"
DIMENSIONS = ("relevance", "expertise", "experience")

# (dimension, ability EN, ability ZH, requirement EN, requirement ZH), importance high to low.
RUBRIC = (
    ("relevance", "Comprehensiveness", "全面性", "include all relevant medical information, omit no important detail",
     "包含所有相关的医学信息，不遗漏重要细节"),
    ("relevance", "Relevance", "相关性", "stay on the core of the question; every part addresses the inquiry",
     "紧扣问题核心，每一部分都回应患者的提问"),
    ("relevance", "Logical structuring", "逻辑性", "clear logical structure, well organised, easy to follow",
     "逻辑结构清晰，条理分明，易于理解"),
    ("expertise", "Safety", "安全性", "put patient safety first; no misleading or harmful advice",
     "以患者安全为先，不给出误导或有害的建议"),
    ("expertise", "Professionalism", "专业性", "meet the medical profession's standards", "符合医学专业标准"),
    ("expertise", "Ethical compliance", "伦理合规", "follow medical ethics", "遵守医学伦理"),
    ("experience", "Clarity", "清晰性", "concise and clear, avoid jargon the patient cannot follow",
     "简洁清楚，避免患者难以理解的术语"),
    ("experience", "Response efficiency", "响应效率", "timely, especially when the situation is urgent",
     "及时回应，情况紧急时尤其如此"),
    ("experience", "Tone and emotional resonance", "语气与共情", "friendly, warm, empathetic; not cold or curt",
     "友好、温暖、有同理心，不冷漠生硬"),
)
_DIM_ZH = {"relevance": "相关性 Relevance", "expertise": "专业性 Expertise", "experience": "体验 Experience"}


def rubric_text() -> str:
    lines = []
    for dim in DIMENSIONS:
        lines.append(f"[{_DIM_ZH[dim]}]")
        for d, en, zh, req_en, req_zh in RUBRIC:
            if d == dim:
                lines.append(f"  - {zh} / {en}: {req_zh}; {req_en}")
    return "\n".join(lines)


SYSTEM_PROMPT = (
    "你是一名资深医学专家，负责比较两个AI医生回答的质量。\n"
    "You are a senior medical expert comparing the quality of two AI doctor answers.\n\n"
    "评价维度（重要性从高到低）/ Rubric (importance from high to low):\n" + rubric_text() + "\n\n"
    "对每个维度判断回答A还是回答B更好，或两者相当（tie）。不要因回答的位置或长度而偏向任何一方。\n"
    "For each dimension decide whether Answer A or Answer B is better, or a tie. Ignore order and length.\n"
    "只输出一个JSON对象 / Output exactly one JSON object and nothing else:\n"
    '{"relevance": "A"|"B"|"tie", "expertise": "A"|"B"|"tie", "experience": "A"|"B"|"tie"}'
)


def build_messages(prompt: str, first: str, second: str) -> list[dict]:
    user = (f"患者问题 / Question:\n{prompt}\n\n"
            f"回答A / Answer A:\n{first}\n\n"
            f"回答B / Answer B:\n{second}\n\n"
            "请输出JSON / Output the JSON:")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------- parsing

_KEY_ALIASES = {"relevance": "relevance", "相关性": "relevance", "expertise": "expertise", "专业性": "expertise",
                "experience": "experience", "体验": "experience", "用户体验": "experience"}
_VAL = {"a": "A", "answer a": "A", "回答a": "A", "b": "B", "answer b": "B", "回答b": "B",
        "tie": "tie", "draw": "tie", "equal": "tie", "same": "tie", "平局": "tie", "相当": "tie", "持平": "tie"}


def _norm_value(v) -> str | None:
    if not isinstance(v, str):
        return None
    return _VAL.get(v.strip().strip("\"'。. ").lower())


def parse_verdict(text: str) -> dict | None:
    """``{dim: "A"|"B"|"tie"}`` for all three dimensions from a judge reply, or ``None``.

    Accepts code fences, prose around the object, Chinese dimension names, case and
    ``draw``/``平局`` for tie; the last JSON object in the reply that names all three wins.
    """
    if not isinstance(text, str):
        return None
    candidates = []
    for m in re.finditer(r"\{[^{}]*\}", text):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            candidates.append(obj)
    for obj in reversed(candidates):
        out = {}
        for k, v in obj.items():
            dim = _KEY_ALIASES.get(str(k).strip().lower())
            val = _norm_value(v)
            if dim and val:
                out[dim] = val
        if all(d in out for d in DIMENSIONS):
            return {d: out[d] for d in DIMENSIONS}
    return None


def combine(ab: dict, ba: dict) -> dict:
    """Per-dimension outcome for answer A from the A/B verdict and the B/A verdict (positions in ``ba``
    are swapped): ``"A"``, ``"B"`` or ``"draw"``."""
    swap = {"A": "B", "B": "A", "tie": "tie"}
    out = {}
    for d in DIMENSIONS:
        first, second = ab[d], swap[ba[d]]
        out[d] = first if first == second and first != "tie" else "draw"
    return out


# --------------------------------------------------------------------------- backends


class JudgeError(Exception):
    """A judge call that failed for good (after retries)."""


class TransientError(Exception):
    """A failure worth retrying (5xx, 429, timeout, connection)."""


class OpenAIBackend:
    """Any OpenAI-compatible chat-completions endpoint. The client's own retries are off: ``Judge``
    retries with its own backoff so that every attempt is counted."""

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, temperature: float = 0.0, max_tokens: int = 256):
        try:
            import openai
        except ImportError as e:
            raise CumedError("the HTTP judge needs the openai client: pip install 'cumed[training]'") from e
        self._openai = openai
        base_url = base_url or os.environ.get("CUMED_JUDGE_BASE_URL")
        self.model = model or os.environ.get("CUMED_JUDGE_MODEL")
        if not base_url or not self.model:
            raise CumedError("judge endpoint not configured: set CUMED_JUDGE_BASE_URL and CUMED_JUDGE_MODEL "
                             "(or --base-url/--judge-model)")
        self.base_url = base_url
        key = api_key or os.environ.get("CUMED_JUDGE_API_KEY") or "EMPTY"
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=0)
        self.temperature, self.max_tokens = temperature, max_tokens

    def __repr__(self):  # never show the key
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    def complete(self, messages: list[dict]) -> tuple[str, dict]:
        o = self._openai
        try:
            r = self._client.chat.completions.create(model=self.model, messages=messages,
                                                     temperature=self.temperature, max_tokens=self.max_tokens)
        except (o.APITimeoutError, o.APIConnectionError, o.RateLimitError, o.InternalServerError) as e:
            raise TransientError(f"{type(e).__name__}: {_short(e)}") from e
        except o.APIStatusError as e:
            if e.status_code >= 500:
                raise TransientError(f"HTTP {e.status_code}") from e
            if e.status_code in (401, 403, 404):
                raise CumedError(f"judge endpoint {self.base_url} refused the request (HTTP {e.status_code}); "
                                 "check CUMED_JUDGE_BASE_URL, CUMED_JUDGE_MODEL and CUMED_JUDGE_API_KEY") from e
            raise JudgeError(f"HTTP {e.status_code}") from e
        except o.APIResponseValidationError as e:
            raise TransientError(f"bad response: {_short(e)}") from e
        except ValueError as e:  # a body that is not JSON at all
            raise TransientError(f"bad response: {_short(e)}") from e
        try:
            text = r.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError) as e:
            raise TransientError("response without choices") from e
        u = getattr(r, "usage", None)
        usage = {"prompt_tokens": int(getattr(u, "prompt_tokens", 0) or 0),
                 "completion_tokens": int(getattr(u, "completion_tokens", 0) or 0)} if u else {}
        return text, usage


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


class TransformersBackend:
    """A local Hugging Face causal LM as the judge (greedy decoding)."""

    def __init__(self, model_path: str | Path, max_new_tokens: int = 64, device: str | None = None):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise CumedError("a local judge needs torch and transformers: pip install 'cumed[training]'") from e
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise CumedError(f"judge model folder {path} has no config.json; give a Hugging Face checkpoint folder")
        self._torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.lm = AutoModelForCausalLM.from_pretrained(str(path)).eval()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.lm.to(self.device)
        self.model = f"local:{path.resolve().name}"
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()

    def _encode(self, messages):
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)["input_ids"]
        text = "\n\n".join(m["content"] for m in messages) + "\n"
        return self.tok(text, return_tensors="pt")["input_ids"]

    def complete(self, messages: list[dict]) -> tuple[str, dict]:
        ids = self._encode(messages).to(self.device)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        with self._lock, self._torch.no_grad():
            out = self.lm.generate(ids, attention_mask=self._torch.ones_like(ids), max_new_tokens=self.max_new_tokens,
                                   do_sample=False, pad_token_id=pad)
        new = out[0, ids.shape[1]:]
        return self.tok.decode(new, skip_special_tokens=True), {"prompt_tokens": int(ids.shape[1]),
                                                                "completion_tokens": int(new.shape[0])}


# --------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    return Path(os.environ.get("CUMED_CACHE") or Path.home() / ".cache" / "cumed") / "judge"


def cache_key(prompt: str, first: str, second: str, judge_model: str, rubric_version: str = RUBRIC_VERSION) -> str:
    blob = json.dumps([prompt, first, second, judge_model, rubric_version], ensure_ascii=False)
    return sha256_text(blob)


class JudgeCache:
    """sqlite ``key -> (verdict, raw reply, usage)``; thread-safe."""

    def __init__(self, directory: str | Path | None = None):
        d = Path(directory) if directory else default_cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / "judgments.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, model TEXT, rubric TEXT, "
                             "verdict TEXT, reply TEXT, usage TEXT, created REAL)")
            self._db.commit()

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT verdict, reply, usage FROM judgments WHERE key=?", (key,)).fetchone()
        return None if row is None else {"verdict": json.loads(row[0]), "reply": row[1], "usage": json.loads(row[2])}

    def put(self, key: str, model: str, verdict: dict, reply: str, usage: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO judgments VALUES (?,?,?,?,?,?,?)",
                             (key, model, RUBRIC_VERSION, json.dumps(verdict), reply, json.dumps(usage), time.time()))
            self._db.commit()

    def close(self):
        with self._lock:
            self._db.close()


# --------------------------------------------------------------------------- judge


class Judge:
    """Asks a backend with retries, caching and accounting.

    ``retries``: extra attempts after a transient failure (backoff ``backoff * 2**k`` seconds, capped
    at ``max_backoff``); ``parse_retries``: extra asks after an unparsable reply (not cached, so they
    really ask again). ``price_prompt_1k``/``price_completion_1k``: cost per 1k tokens.
    """

    def __init__(self, backend, cache: JudgeCache | None = None, retries: int = 4, parse_retries: int = 2,
                 backoff: float = 1.0, max_backoff: float = 30.0, price_prompt_1k: float = 0.0,
                 price_completion_1k: float = 0.0):
        self.backend, self.cache = backend, cache
        self.model = backend.model
        self.retries, self.parse_retries = retries, parse_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.price_prompt_1k, self.price_completion_1k = price_prompt_1k, price_completion_1k
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "cache_hits": 0, "transient_errors": 0, "unparsable_replies": 0,
                      "prompt_tokens": 0, "completion_tokens": 0}

    def _count(self, **kw):
        with self._lock:
            for k, v in kw.items():
                self.stats[k] += v

    def _call(self, messages) -> tuple[str, dict]:
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
            self._count(requests=1)
            try:
                text, usage = self.backend.complete(messages)
            except TransientError as e:
                self._count(transient_errors=1)
                last = str(e)
                log.warning("judge request failed (attempt %d/%d): %s", attempt + 1, self.retries + 1, last)
                continue
            self._count(prompt_tokens=usage.get("prompt_tokens", 0), completion_tokens=usage.get("completion_tokens", 0))
            return text, usage
        raise JudgeError(f"gave up after {self.retries + 1} attempts: {last}")

    def ask(self, prompt: str, first: str, second: str) -> dict:
        """One order: ``{"verdict": {dim: A|B|tie}, "cached": bool}`` or raises ``JudgeError``."""
        key = cache_key(prompt, first, second, self.model)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self._count(cache_hits=1)
                return {"verdict": hit["verdict"], "cached": True}
        messages = build_messages(prompt, first, second)
        reply = ""
        for _ in range(self.parse_retries + 1):
            reply, usage = self._call(messages)
            verdict = parse_verdict(reply)
            if verdict is not None:
                if self.cache is not None:
                    self.cache.put(key, self.model, verdict, reply, usage)
                return {"verdict": verdict, "cached": False}
            self._count(unparsable_replies=1)
        raise JudgeError(f"unparsable judge reply after {self.parse_retries + 1} tries: {reply[:120]!r}")

    def judge_pair(self, item_id: str, prompt: str, a: str, b: str) -> dict:
        """Both orders; ``{"id", "verdict": {dim: A|B|draw}, "ab", "ba"}`` or ``{"id", "invalid": reason}``."""
        try:
            ab = self.ask(prompt, a, b)["verdict"]
            ba = self.ask(prompt, b, a)["verdict"]
        except JudgeError as e:
            return {"id": item_id, "invalid": str(e)}
        return {"id": item_id, "verdict": combine(ab, ba), "ab": ab, "ba": ba}

    def usage(self) -> dict:
        p, c = self.stats["prompt_tokens"], self.stats["completion_tokens"]
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                "cost": round(p / 1000 * self.price_prompt_1k + c / 1000 * self.price_completion_1k, 6),
                "price_prompt_1k": self.price_prompt_1k, "price_completion_1k": self.price_completion_1k}


def run_judge(judge: Judge, items, answers_a: dict[str, str], answers_b: dict[str, str], *, limit: int | None = None,
              workers: int = 4, meta: dict | None = None, skip: dict[str, str] | None = None) -> dict:
    """Judge A against B on benchmark ``items``; every item id appears in ``items`` of the result, as a
    verdict or as invalid (an item without an answer from A or B is invalid with that reason, and so
    is one named in ``skip``, with the reason given there)."""
    items = list(items)[:limit] if limit else list(items)

    def one(it):
        if skip and it.id in skip:
            return {"id": it.id, "invalid": skip[it.id]}
        miss = [n for n, ans in (("A", answers_a), ("B", answers_b)) if it.id not in ans]
        if miss:
            return {"id": it.id, "invalid": f"no answer from {' and '.join(miss)}"}
        return judge.judge_pair(it.id, it.prompt, answers_a[it.id], answers_b[it.id])

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            results = list(ex.map(one, items))
    else:
        results = [one(it) for it in items]
    for r, it in zip(results, items):
        r["urology"] = it.urology
    return {**(meta or {}), "judge_model": judge.model, "rubric_version": RUBRIC_VERSION, "n_items": len(items),
            "summary": summarize(results), "summary_urology": summarize([r for r in results if r["urology"]]),
            "invalid": [{"id": r["id"], "reason": r["invalid"]} for r in results if "invalid" in r],
            "stats": dict(judge.stats), "usage": judge.usage(), "items": results}


def summarize(results: list[dict]) -> dict:
    """Per dimension ``{win, draw, loss}`` counted for answer A over valid items, plus ``n_valid``/``n_invalid``."""
    valid = [r for r in results if "verdict" in r]
    out = {d: {"win": sum(r["verdict"][d] == "A" for r in valid), "draw": sum(r["verdict"][d] == "draw" for r in valid),
               "loss": sum(r["verdict"][d] == "B" for r in valid)} for d in DIMENSIONS}
    out["n_valid"], out["n_invalid"] = len(valid), len(results) - len(valid)
    return out
