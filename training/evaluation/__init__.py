"""Evaluation: pairwise rubric judge (Table 2), reference metrics, benchmark loaders, HTML report.

``judge`` needs ``openai`` (HTTP judges) or ``transformers`` (local judges); ``metrics`` needs
``sacrebleu``; both are in the ``training`` extra.
"""
