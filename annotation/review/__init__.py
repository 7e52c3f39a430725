"""Manual review: sample documents, queue them for annotators, pull decisions, publish a version.

``push`` (sampling + a backend) -> annotators -> ``pull`` (validated decisions) -> ``apply``
(a new store version where discarded documents move to ``removed`` with
``manual_review:<reason>``). Local batch state lives in ``<store>/_review/<dataset>/``.
"""
