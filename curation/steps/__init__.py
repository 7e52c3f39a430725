"""Curation steps: normalisation, PII redaction, heuristic filters, decontamination."""
