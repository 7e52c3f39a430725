"""``disease_cards``: the 39health disease table as one encyclopedia entry per disease.

``QASystemOnMedicalGraph_39health/data/disease.csv`` (GB18030) has one row per disease with the
columns name, alias, part, age, infection, insurance, department, checklist, symptom,
complication, treatment, drug, period, rate, money (plus five unnamed trailing columns). Lists
are space separated and end with the scraper's ``[详细]`` link text; long items are cut with
``...`` by the site. A row becomes::

    阳痿
    别名：勃起功能障碍、勃起机能障碍、勃起无力、阳萎、勃起不足
    发病部位：阴茎
    就诊科室：男科 生殖健康
    常见检查：外生殖器检查、前列腺B超、...
    ...

``[详细]`` is dropped, list items are de-duplicated and joined with ``、``; items cut with
``...`` are kept as they are (cutting them further would invent names); ``暂无相关资料``
("no data") lines are left out. ``department`` is the department column with whitespace
collapsed (``外科 骨外科``).

In the real file 11 rows have values in the unnamed trailing columns: their columns are shuffled
(the disease name sits in column 16, a price in ``checklist``...). They are read errors, as the
``csv`` reader reports them; nothing is salvaged from them.

Options: ``encoding`` (default gb18030), ``labels`` (column → label, replaces the default map),
``list_fields`` (columns holding lists).
"""

from __future__ import annotations

import re

from curation.readers.base import check_choice
from curation.readers.csv_table import CsvReader

LABELS = {
    "alias": "别名",
    "part": "发病部位",
    "age": "易感人群",
    "infection": "传染性",
    "insurance": "医保",
    "department": "就诊科室",
    "checklist": "常见检查",
    "symptom": "典型症状",
    "complication": "并发症",
    "treatment": "治疗方法",
    "drug": "常用药品",
    "period": "治疗周期",
    "rate": "治愈率",
    "money": "治疗费用",
}
LIST_FIELDS = ("alias", "checklist", "symptom", "complication", "treatment", "drug")
NO_DATA = {"暂无相关资料", "暂无", "无", "nan"}
_SPLIT = {
    "alias": re.compile(r"[,，、;；]+"),
    "treatment": re.compile(r"[、,，;；\s]+"),
}
_SPACE = re.compile(r"\s+")


class DiseaseCardsReader(CsvReader):
    name = "🩺 disease cards"
    options = ("encoding", "labels", "list_fields", "name_field")

    def __init__(
        self,
        data_folder,
        encoding: str = "gb18030",
        labels: dict[str, str] | None = None,
        list_fields: list[str] | tuple[str, ...] = LIST_FIELDS,
        name_field: str = "name",
        **kwargs,
    ):
        super().__init__(data_folder, encoding=encoding, department_field="department", title_field=name_field, **kwargs)
        self.labels = dict(labels or LABELS)
        self.list_fields = tuple(list_fields)
        for f in self.list_fields:
            check_choice(f, tuple(self.labels), "list field", self.source)
        self.name_field = name_field

    def check_header(self, header, relpath):
        wanted = [self.name_field, *self.labels]
        missing = [f for f in wanted if f not in header]
        if missing:
            raise ValueError(
                f"source {self.source}: {relpath} has no column {missing[0]!r} (columns: {', '.join(h for h in header if h)}); "
                "this is not a 39health disease table, or set options.labels"
            )

    def _items(self, field: str, value: str) -> list[str]:
        value = value.replace("[详细]", "").strip()
        splitter = _SPLIT.get(field, _SPACE)
        seen: list[str] = []
        for item in splitter.split(value):
            item = item.strip()
            if item and item not in seen and item not in NO_DATA:
                seen.append(item)
        return seen

    def row_text(self, row: dict[str, str]) -> str:
        lines = [row.get(self.name_field, "").strip()]
        for field, label in self.labels.items():
            value = row.get(field, "").replace("[详细]", "").strip()
            if field in self.list_fields:
                value = "、".join(self._items(field, value))
            else:
                value = _SPACE.sub(" ", value).rstrip(";；")
            if value and value not in NO_DATA:
                lines.append(f"{label}：{value}")
        return "\n".join(lines)
