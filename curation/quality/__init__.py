"""fastText classifiers (quality, relevance): tokenizer, model wrapper, deterministic training and artifact loading (the quality workflow: ``annotation.quality``)."""
