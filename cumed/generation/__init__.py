"""Sampling responses from models for a version's prompts (``cumed generate``).

The foundation holds it because annotation (ranking, scoring) and training (rejection sampling,
evaluation) both need it and may not import each other. One concept per module:

- ``prompts``: the prompts of a version (conversations, rankings);
- ``targets``: the model endpoints to ask, their URL rules and the API key rule;
- ``replies``: a model's reply checked as untrusted input;
- ``runner``: datatrove's ``InferenceRunner`` per target, resumable in a work folder;
- ``publish``: the ``responses`` version and its lineage.

``generate`` ties them together.
"""

from __future__ import annotations

from cumed.generation.run import generate  # noqa: F401
