"""cumed's foundation: the versioned store, row schemas, errors, atomic writes, ids, evaluation
sets, lineage and the ``cumed`` command line. It imports none of the three wings (``curation``,
``annotation``, ``training``); they and the CLI stand on it. Contracts: ``docs/design.md``."""

__version__ = "0.1.0"
