"""Only the texts OpenCC can change are converted (``curation.steps.opencc_changes``)."""

import opencc
import pytest

from curation.steps.normalize import Normalize
from curation.steps.opencc_changes import (
    _config_path,
    _dictionary_files,
    _read_dictionary,
    changing_chars,
    changing_table,
    may_change,
)


def _changing_entries(config="t2s"):
    return [(k, v) for path in _dictionary_files(_config_path(config)) for k, v in _read_dictionary(path) if k != v]


def test_every_changing_key_of_t2s_is_caught():
    """The exactness argument: each key whose value differs holds a sentinel, so a text with one
    of these keys anywhere in it is converted. Phrases included (``么麼`` -> ``幺麽`` is caught by
    ``麼``), and the config's normalisation dictionary (CJK compatibility ideographs) too."""
    entries = _changing_entries()
    files = {p.name for p in _dictionary_files(_config_path("t2s"))}
    assert {"TSPhrases.ocd2", "TSCharacters.ocd2", "CJK_Compatibility_Ideographs.ocd2"} <= files
    assert len(entries) > 4000 and any(len(k) > 1 for k, _ in entries)
    table = changing_table("t2s")
    caught = may_change([f"患者主诉{k}三天" for k, _ in entries], table)
    assert caught.all(), [k for (k, _), c in zip(entries, caught) if not c][:10]
    # and the converter agrees that each such text changes (the dictionaries were read right)
    cc = opencc.OpenCC("t2s")
    assert sum(cc.convert(k) != k for k, _ in entries) > 0.95 * len(entries)


def test_simplified_text_is_not_converted_and_comes_out_the_same():
    """A chunk of Simplified texts with a few Traditional ones: only those reach OpenCC (a spy on
    the real converter counts what it is given), and the output and counters are those of
    converting every text."""
    simp = ["医生说这个药每天吃两次。", "什么原因引起的尿频？", "肾结石 3mm，多喝水。", "ok"]
    trad = ["醫生說這個藥每天吃兩次。", "甚麼原因引起的尿頻？"]
    chunk = simp * 5 + trad + simp

    class Spy:
        def __init__(self, real):
            self.real, self.given = real, []

        def convert(self, text):
            self.given.append(text)
            return self.real.convert(text)

    skipping, converting = Normalize(), Normalize()
    spy = Spy(skipping._converter)
    skipping.__dict__["_converter"] = spy
    converting.__dict__["_changing"] = None  # no table: every text goes through OpenCC
    assert skipping.transform_batch(chunk) == converting.transform_batch(chunk)
    counts = {k: (v.n, v.total) for k, v in skipping.stats.stats.items()}
    assert counts == {k: (v.n, v.total) for k, v in converting.stats.stats.items()}
    assert len(spy.given) == 1 and spy.given[0].split("\x00") == trad
    assert counts["changed_t2s"][1] == 2


def test_no_table_where_the_dictionaries_cannot_be_read(tmp_path):
    """A config that cannot be read gives no table: every text is converted, as before."""
    bad = tmp_path / "mine.json"
    bad.write_text('{"conversion_chain": [{"dict": {"type": "ocd2", "file": "missing.ocd2"}}]}', encoding="utf-8")
    assert changing_chars(str(bad)) is None
    assert changing_chars("t2s") == changing_chars("t2s.json") and "麼" in changing_chars("t2s")
    # a text dictionary is read as it is
    (tmp_path / "d.txt").write_text("乾\t干 乾\n慰藉\t慰藉\n麪坏兒\t面坯儿\n", encoding="utf-8")
    (tmp_path / "text.json").write_text('{"conversion_chain": [{"dict": {"type": "text", "file": "d.txt"}}]}',
                                        encoding="utf-8")
    assert changing_chars(str(tmp_path / "text.json")) == {"乾", "麪"}


@pytest.mark.parametrize("texts", [[], [""], ["a", ""], ["𠀀乾"], ["ab", "c", "d乾", "e"], ["乾", "", "x"]])
def test_may_change_edges(texts):
    assert may_change(texts, changing_table("t2s")).tolist() == [("乾" in t) for t in texts]
    # the same answer from the texts joined with a separator, as ``Normalize`` passes them
    assert may_change(texts, changing_table("t2s"), "\x00".join(texts), "\x00").tolist() == [("乾" in t) for t in texts]
