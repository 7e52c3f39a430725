"""The document contract shared by readers, steps and the store.

A datatrove ``Document`` travels through every pipeline. cumed adds a few metadata keys that
the store turns into columns (see the ``documents`` schema in ``cumed.schemas``):

- ``source``      recipe source name, e.g. ``toyhom_csv``
- ``category``    Table-1 category: encyclopedia | qa | knowledge_graph | medical_case | textbook
- ``department``  free text from the source, ``""`` when unknown
- ``removed_by`` / ``reason``   set by a step when it removes the document
- ``read_error``  set by a reader on a record it could not parse; the first step removes it
- anything else   kept in the ``metadata`` JSON column

Ids are stable: the same input record gives the same id on every run, so review decisions,
dedup references and decontamination hits survive rebuilds.
"""

from __future__ import annotations


CORE_KEYS = ("source", "category", "department")
REMOVAL_KEYS = ("removed_by", "reason")
CATEGORIES = ("encyclopedia", "qa", "knowledge_graph", "medical_case", "textbook", "guideline", "dialogue", "other")

