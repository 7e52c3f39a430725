"""Model-scored labels (``cumed annotate``): a model grades a stratified sample of documents with a
Chinese medical rubric (0-5 and a one-line reason) and the grades become a ``labels`` version,
which trains the quality classifier (``cumed quality train --labels``) and pre-annotates review
tasks (``cumed review push --predictions``). One concept per module:

- ``rubrics``: the relevance and quality rubrics and the prompt a document becomes;
- ``sampling``: which documents are scored (per source and category, seeded);
- ``replies``: a rubric reply checked as untrusted input (a score 0-5 and a reason, or a failure);
- ``publish``: the ``labels`` version and its lineage;
- ``run``: ``annotate`` ties them together on the generator's runner (``cumed.generation.runner``).
"""
