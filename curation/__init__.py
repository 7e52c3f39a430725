"""cumed curation: readers, cleaning steps, deduplication and the recipe build (datatrove pipelines)."""
