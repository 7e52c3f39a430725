"""Ranking annotation and reward pairs (CUMed-LLaMA stage 3a).

``tasks``     prompt + K named responses -> a Label Studio task with opaque, shuffled response ids
``config``    the labeling config: List + Ranker, the Table-2 rubric, optional per-dimension ratings
``validate``  Label Studio export -> validated rankings (problems reported by task id), agreement
``queue``     batch state in ``<store>/_ranking/<dataset>/``: push (file backend) and pull -> ``rankings``
``pairs``     ``rankings`` -> ``preferences`` (adjacent or all pairs, margins, prompt-grouped splits, mixing)
``importers`` real rankings: DISC-MedLLM eval (GPT-4 scores or source order), MedicalGPT reward pairs
``build``     publishing: ``import_disc`` -> ``rankings``, ``publish_pairs`` -> ``preferences``
``recipe``    a ``kind: preferences`` recipe (``datasets/cumed-rm.yaml``) built by ``cumed build``
"""
