"""The quality classifier at inference time: tokenizer, model wrapper and artifact loading (training: ``annotation.quality``)."""
