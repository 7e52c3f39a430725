"""cumed training: thin recipes over transformers/TRL/torch that read versioned datasets."""
