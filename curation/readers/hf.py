"""``hf``: Hugging Face ``datasets`` data: a folder written by ``Dataset.save_to_disk`` or
Hub-layout Parquet shards (``data/train-00000-of-00004.parquet``), local or any fsspec URL.

The recipe path names the folder (``path: hf/mydataset``: every file under it) or a glob of
shards (``path: mydataset/data/train-*.parquet``). Each data file is one unit of work, like
every other reader's files, so the build spreads the shards over its tasks by size and hashes
each into its lineage:

- ``*.parquet``: datatrove's ``ParquetReader`` (``curation.readers.parquet``);
- ``*.arrow``: the Arrow stream files ``save_to_disk`` writes (``data-00000-of-00001.arrow``),
  read record batch by record batch, the rows going through the same adapter;
- ``state.json``, ``dataset_info.json``, ``dataset_dict.json``, ``README.md``, ``.gitattributes``:
  the folder's description, no records.

Why not datatrove's ``HuggingFaceDatasetReader``: its ``run`` loads the whole dataset
(``load_from_disk``) in every task and shards it by rank, outside the build's per-file units
(balanced by size, counted per file, hashed per file into the lineage), and it drops rows
without text. A ``DatasetDict`` folder (one sub-folder per split) is read split by split: name
the split's folder in the path (``hf/mydataset/train``).

Text, id and metadata: ``curation.readers.records``; rows count from 0 in each file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath

from curation.batch import DocumentBatch
from curation.readers.parquet import ParquetFilesReader

# files of a saved dataset or a Hub repository that describe it and hold no records
DESCRIPTION_FILES = ("state.json", "dataset_info.json", "dataset_dict.json", "README.md", ".gitattributes")


class HfDatasetReader(ParquetFilesReader):
    """Saved ``datasets`` folders (Arrow) and Hub-layout Parquet shards; see the module doc."""

    name = "hf"

    def record_chunks(self, filepath: str) -> Iterator[DocumentBatch]:
        name = PurePosixPath(filepath).name
        if name in DESCRIPTION_FILES:
            return
        if name.endswith(".parquet"):
            yield from super().record_chunks(filepath)
        elif name.endswith(".arrow"):
            yield from self.row_chunks(filepath, lambda: self._arrow_batches(filepath))
        else:
            yield DocumentBatch.from_documents([self.error(
                f"{self.relpath(filepath)}: not a dataset file (.arrow or .parquet); fix: point the recipe path at "
                "the dataset folder or its shards only", filepath, 0)])

    def _arrow_batches(self, filepath: str) -> Iterator[list]:
        import pyarrow as pa

        with self.data_folder.open(filepath, "rb") as f:
            try:
                batches = pa.ipc.open_stream(f)  # what save_to_disk writes
            except pa.ArrowInvalid:
                f.seek(0)
                batches = pa.ipc.open_file(f)
                batches = (batches.get_batch(i) for i in range(batches.num_record_batches))
            for batch in batches:
                yield batch.to_pylist()
