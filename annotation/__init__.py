"""cumed annotation: review queues, Label Studio, ranking, the quality classifier."""
