"""Batch state shared by review and ranking: ids, lookups and their errors."""

from __future__ import annotations

import pytest

from annotation.ranking.queue import RankState
from annotation.review.queue import ReviewState
from cumed.errors import CumedError
from cumed.store import Store


def test_batch_ids_count_per_dataset_and_kind(tmp_path):
    store = Store(tmp_path / "store", create=True)
    review, rank = ReviewState(store, "corpus"), RankState(store, "corpus")
    assert (review.new_batch_id(), rank.new_batch_id()) == ("corpus.r001", "corpus.k001")
    review.save_batch({"batch": "corpus.r001"})
    review.save_batch({"batch": "corpus.r002"})
    assert review.new_batch_id() == "corpus.r003" and rank.new_batch_id() == "corpus.k001"
    assert ReviewState.for_batch(store, "corpus.r002").batch("corpus.r002") == {"batch": "corpus.r002"}
    assert review.results("corpus.r001") == []


def test_unknown_or_malformed_batch_ids_say_what_exists(tmp_path):
    store = Store(tmp_path / "store", create=True)
    ReviewState(store, "corpus").save_batch({"batch": "corpus.r001"})
    with pytest.raises(CumedError, match=r"no review batch corpus.r009 .*batches: corpus.r001"):
        ReviewState.for_batch(store, "corpus.r009")
    with pytest.raises(CumedError, match=r"bad ranking batch id 'corpus.r001'.*\.k001 \(printed by rank push\)"):
        RankState.for_batch(store, "corpus.r001")
