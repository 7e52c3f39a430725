"""SFT dialogue datasets (``kind: conversations``): readers, roles, department selection,
decontamination, near-duplicate-aware splits, packing, build. Entry point:
``curation.sft.build.build_conversations(recipe_path, raw, store)``."""

from curation.sft.roles import ROLES, dialogue_text, normalize_role, split_inline, user_text, validate

__all__ = ["ROLES", "dialogue_text", "normalize_role", "split_inline", "user_text", "validate"]
