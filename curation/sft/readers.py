"""Conversation readers: every dialogue shape of the raw data -> Documents carrying ``messages``.

They are the document readers of ``curation.readers`` (CSV, text blocks, JSON array/JSON Lines)
with one addition: a template may mark turns with ``[[role]]``. The rendered record is cut at
those marks into ``metadata["messages"]`` (``[{role, content}]``) and ``doc.text`` becomes the
turn contents joined by newlines. Everything else is inherited unchanged: encodings (GB18030),
stable ids (``stable_id(source, relpath, key)``), and the read-error convention (a truncated
JSON array, undecodable bytes or a row with a missing column becomes one record with
``read_error`` naming file and line; the run goes on).

Turn marks in a template::

    [[user]] [[assistant]] [[system]]   a fixed role
    [[{from}]]                          the role named by a field (ShareGPT ``from``), mapped by
                                        ``curation.sft.roles.normalize_role``
    [[inline]]                          the value holds several turns with inline markers
                                        (``病人：…医生：…``, ``<user>: … <bot>: …``), cut by
                                        ``curation.sft.roles.split_inline``

Examples (the shapes of the raw data, see ``datasets/cumed-sft.yaml``)::

    Toyhom CSV      template: "[[user]]{ask}[[assistant]]{answer}"
    CMtMedQA        templates: [{when: history, template: "{history}[[user]]{instruction}\\n{input}[[assistant]]{output}",
                                 each: {history: "[[user]]{0}[[assistant]]{1}"}},
                                {when: instruct, template: "[[user]]{instruct}[[assistant]]{output}"}]
    ShareGPT        template: "{conversations}", each: {conversations: "[[{from}]]{value}"}
    BianQue         template: "[[inline]]{input}{target}", unescape: true   (input ends with "医生：")
    liver_cancer    template: "[[inline]]{instruction}[[assistant]]{output}"

An unknown role marker is kept as written (``raw_role``) and the dialogue is later removed with
``unknown_role``; text before the first inline marker sets ``metadata["role_error"]``. Neither
is repaired here: the reader reports what the source says.
"""

from __future__ import annotations

import re

from datatrove.data import Document

from curation.readers import make_reader
from curation.readers.base import CumedReader
from curation.readers.csv_table import CsvReader
from curation.readers.json_records import JsonReader
from curation.readers.text_blocks import TextBlocksReader
from curation.sft.roles import InlineError, dialogue_text, normalize_role, split_inline

TURN, SEP = "\ue000", "\ue001"  # private-use code points: never in the raw text, and not whitespace
# (the ASCII separators \x1e/\x1f would be: str.strip() removes them)
_MARK = re.compile(r"\[\[([^\[\]]+)\]\]")


def compile_turns(template: str | None) -> str | None:
    """``"[[user]]{ask}"`` -> ``"\\ue000user\\ue001{ask}"`` (the form ``parse_turns`` cuts)."""
    return _MARK.sub(lambda m: f"{TURN}{m.group(1).strip()}{SEP}", template) if template else template


def parse_turns(rendered: str, unescape: bool = False) -> tuple[list[dict], str | None]:
    """Rendered template -> (messages, role_error). Roles are normalised; unknown ones kept raw."""
    messages: list[dict] = []
    for seg in rendered.split(TURN)[1:]:
        role, _, content = seg.partition(SEP)
        if unescape:
            content = content.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\t", "\t")
        if role == "inline":
            try:
                pairs = split_inline(content)
            except InlineError as e:
                return messages, f"inline_roles: {e}"
        else:
            pairs = [(role, content.strip())]
        for raw, text in pairs:
            norm = normalize_role(raw)
            msg = {"role": norm or str(raw), "content": text}
            if norm is None:
                msg["raw_role"] = str(raw)
            messages.append(msg)
    return messages, None


class ConversationMixin:
    """Turns a ``[[role]]``-marked rendering into ``metadata["messages"]`` (see module doc)."""

    conversation_options = ("unescape",)

    def _init_conversation(self, unescape: bool) -> None:
        self.unescape = bool(unescape)

    def document(self, text: str, filepath: str, index, native=None, department=None, **meta) -> Document:
        doc = CumedReader.document(self, text, filepath, index, native=native, department=department, **meta)
        if TURN not in text:
            if text and not doc.metadata.get("read_error"):
                doc.metadata["role_error"] = "no_turns: the template rendered no [[role]] turn"
            doc.metadata["messages"] = []
            return doc
        messages, err = parse_turns(text, self.unescape)
        doc.metadata["messages"] = [{k: v for k, v in m.items()} for m in messages]
        if err:
            doc.metadata["role_error"] = err
        doc.text = dialogue_text(messages)
        return doc


class ConversationCsvReader(ConversationMixin, CsvReader):
    """``conv_csv``: CSV rows (Toyhom ``department,title,ask,answer``; BianQue ``input,target``)."""

    name = "💬 conversation csv"
    options = (*CsvReader.options, *ConversationMixin.conversation_options)

    def __init__(self, data_folder, unescape: bool = False, **kwargs):
        super().__init__(data_folder, **kwargs)
        if not self.template or "[[" not in self.template:
            raise ValueError(f"source {self.source}: options.template must mark turns, e.g. \"[[user]]{{ask}}[[assistant]]{{answer}}\"")
        self.template = compile_turns(self.template)
        self._init_conversation(unescape)


class ConversationTextBlocksReader(ConversationMixin, TextBlocksReader):
    """``conv_text_blocks``: blank-line separated blocks (Toyhom ``内科.txt``: ``title,ask`` / answer)."""

    name = "💬 conversation text blocks"
    options = (*TextBlocksReader.options, *ConversationMixin.conversation_options)

    def __init__(self, data_folder, unescape: bool = False, template: str | None = None, **kwargs):
        if not template or "[[" not in template:
            raise ValueError("options.template must mark turns, e.g. \"[[user]]{ask}[[assistant]]{answer}\"")
        super().__init__(data_folder, template=template, **kwargs)
        self.template = compile_turns(self.template)
        self._init_conversation(unescape)


class ConversationJsonReader(ConversationMixin, JsonReader):
    """``conv_json``: JSON arrays / JSON Lines (CMtMedQA, ShareGPT, liver_cancer, alpaca-style)."""

    name = "💬 conversation json"
    options = (*JsonReader.options, *ConversationMixin.conversation_options)

    def __init__(self, data_folder, unescape: bool = False, **kwargs):
        super().__init__(data_folder, **kwargs)
        if not self.shapes or not all("[[" in s["template"] or any("[[" in e for e in s["each"].values()) for s in self.shapes):
            raise ValueError(f"source {self.source}: every template must mark turns with [[user]]/[[assistant]]/[[{{field}}]]/[[inline]]")
        for s in self.shapes:
            s["template"] = compile_turns(s["template"])
            s["each"] = {k: compile_turns(v) for k, v in s["each"].items()}
        self._init_conversation(unescape)


CONVERSATION_READERS: dict[str, type[CumedReader]] = {
    "conv_csv": ConversationCsvReader,
    "conv_text_blocks": ConversationTextBlocksReader,
    "conv_json": ConversationJsonReader,
}
COMMON_OPTIONS = ("synthetic",)


def make_conversation_reader(source: dict, raw_root: str, **kw) -> CumedReader:
    """One recipe ``sources:`` entry (reader ``conv_csv`` | ``conv_text_blocks`` | ``conv_json``)
    -> its reader. Raises ``ValueError`` naming the source and the choices."""
    return make_reader({"category": "dialogue", **source}, raw_root, registry=CONVERSATION_READERS,
                       kind="conversation reader", **kw)


def read_conversations(source: dict, raw_root: str, **kw):
    """All Documents of one source (single process; for tests and small builds)."""
    reader = make_conversation_reader(source, raw_root, **kw)
    yield from reader.run()
