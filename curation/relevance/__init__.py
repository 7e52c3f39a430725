"""Relevance: is a document about human medicine? A classifier learnt from hand labels.

``labels`` (the committed labels, their validation and the fixed split), ``texts`` (the labelled
documents' text as the build makes it), ``train`` (features, fastText fit, threshold by
cross-validation), ``artifact`` (the model in the store's models, found by training key) and
``model`` (what a build applies: reused or trained). The filter step is
``curation.steps.relevance``; the rule the labels follow is ``labels/RULE.md``.
"""
