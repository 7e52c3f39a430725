"""A task's memory goes back when it ends: no ``Features`` cycle, and a full collection after every
task of the local executor (``curation.build.task_gc``)."""

from __future__ import annotations

import gc
import weakref

from curation.build.local_executor import LocalExecutor
from curation.steps.filters._text import features_batch


def test_prose_of_an_all_prose_text_makes_no_reference_cycle():
    """``Features.prose`` of a text that is all prose is the Features itself; remembering that must
    not make a cycle, which held the chunk's arrays until a full collection (a 10M build's worker
    grew ~75 MB a task). With the collector off, nothing is left for it to find."""
    texts = [f"患者{i}号，尿频尿急三天。\n建议做尿常规检查。" for i in range(300)]
    texts += ["| 表 | 1 |\n| --- | --- |\n患者尿频尿急三天，建议做尿常规检查。"]  # prose is a new Features
    for ft in features_batch(["先加载", "表格和内核"]):  # the first call's loading leaves its own garbage
        ft.prose()
    gc.collect()
    gc.disable()
    try:
        fts = features_batch(texts)
        assert fts[0].prose(chinese=True) is fts[0] and fts[0].prose() is fts[0]
        assert fts[-1].prose() is not fts[-1]
        for ft in fts:
            ft.prose(chinese=True)
        features_batch(["另一个块", "清空上一次的答案"])  # the memo of the last chunk lets go of these
        from curation.steps.filters import _text

        _text.clear_cache()
        del fts, ft
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0


class _Cycle:
    pass


_held: list[weakref.ref] = []


def _leave_a_cycle(data, rank: int = 0, world_size: int = 1):
    """A step that leaves an object in a reference cycle behind, as a task's garbage."""
    obj = _Cycle()
    obj.me = obj
    _held.append(weakref.ref(obj))
    yield from data or ()


def test_local_executor_collects_each_tasks_garbage(tmp_path):
    """With the collector's automatic passes off, a task's cycle is gone once the task ends: the
    executor collected it, task by task (each task's object is dead before the next one runs)."""
    alive_at_start = []

    def check_previous(data, rank: int = 0, world_size: int = 1):
        alive_at_start.append([r() is not None for r in _held])
        yield from data or ()

    _held.clear()
    gc.collect()
    gc.disable()
    try:
        LocalExecutor(pipeline=[check_previous, _leave_a_cycle], tasks=3, workers=1,
                      logging_dir=str(tmp_path / "logs")).run()
        after = [r() is not None for r in _held]
    finally:
        gc.enable()
    assert len(_held) == 3 and after == [False, False, False]
    # a task's own object is alive while it runs; the earlier tasks' are gone
    assert alive_at_start == [[True], [False, True], [False, False, True]]
