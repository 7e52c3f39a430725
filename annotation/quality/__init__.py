"""Quality classifier: fastText on jieba words (or character n-grams), trained from review labels
and weak labels, published as a versioned artifact and applied as the ``quality`` filter step.

Modules: ``tokenize`` (fastText input lines), ``train`` (training, numpy metrics, thresholds, PR
plot), ``weak_labels`` (real doctor vs GPT-distilled answers from the raw data),
``review_labels`` (labels from review batches), ``artifact`` (versioned model + lineage),
``filter`` (``QualityFilter``), ``workflow`` (``train_and_publish``).
"""
