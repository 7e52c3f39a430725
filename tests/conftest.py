import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RAW = Path(os.environ.get("CUMED_RAW") or REPO.parent / "shared" / "data" / "raw").resolve()


@pytest.fixture(scope="session")
def raw_root() -> Path:
    if not RAW.is_dir():
        pytest.fail(f"raw data not found at {RAW}; clone cumed beside shared/ or set CUMED_RAW")
    return RAW
