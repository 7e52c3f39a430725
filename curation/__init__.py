"""cumed curation: readers, cleaning steps, deduplication and the versioned dataset store."""

__version__ = "0.1.0"
