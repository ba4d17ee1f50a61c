"""Where frames live between tasks: Parquet files under one ObjectStoragePath.

XCom carries only the small :class:`Stage` address (a URL string) and counts. The base is the
``MCSF_STAGING_URL`` environment variable — ``file://`` on one machine, ``s3://bucket/prefix``
when Celery workers on several machines must see the same files — defaulting to
``$AIRFLOW_HOME/mcsf-staging``. One run of one audience writes under
``{base}/{dag_id}/{window}/{audience_id}/``, so re-running an interval overwrites its own files
and never another interval's.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import pandas as pd
    from airflow.sdk import ObjectStoragePath


def staging_base() -> str:
    """The staging root URL (``file://`` or any fsspec URL the ObjectStoragePath knows)."""
    url = os.environ.get("MCSF_STAGING_URL")
    if url:
        return url.rstrip("/")
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    return f"file://{home.resolve() / 'mcsf-staging'}"


@dataclass(frozen=True)
class Window:
    """A run's data interval ``[start, end)``, the only time a task reads (never ``now()``)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a data interval needs time-zone-aware start and end")
        if self.end < self.start:
            raise ValueError(f"data interval ends ({self.end}) before it starts ({self.start})")

    @property
    def key(self) -> str:
        """A path-safe name, e.g. ``20261120T0900Z_20261120T1000Z``."""
        return f"{_stamp(self.start)}_{_stamp(self.end)}"

    def __str__(self) -> str:
        return f"[{self.start.astimezone(UTC):%Y-%m-%d %H:%M}, {self.end.astimezone(UTC):%Y-%m-%d %H:%M}) UTC"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


@dataclass(frozen=True)
class Stage:
    """The staging folder of one audience in one run; serialisable as its URL."""

    url: str

    @classmethod
    def for_run(cls, dag_id: str, window: Window, audience_id: str) -> Stage:
        return cls(f"{staging_base()}/{dag_id}/{window.key}/{audience_id}")

    @classmethod
    def shared(cls, dag_id: str, window: Window) -> Stage:
        """What one run's audiences share (``_run``: not one of the :meth:`siblings`)."""
        return cls.for_run(dag_id, window, "_run")

    def run_shared(self) -> Stage:
        """:meth:`shared` of this audience's run."""
        return Stage(str(self.path.parent / "_run"))

    def sibling(self, audience_id: str) -> Stage:
        """The stage of another audience of this run."""
        return Stage(str(self.path.parent / audience_id))

    def clear(self) -> None:
        """Remove everything staged here (a run's shared stage, when the run starts)."""
        if self.path.exists():
            self.path.fs.rm(self.path.path, recursive=True)

    def remove(self, prefix: str) -> int:
        """Remove the frames whose name starts with ``prefix``; how many this call removed. Mapped
        tasks running side by side may remove the same frames: one gone already is not an error."""
        if not self.path.exists():
            return 0
        removed = 0
        for p in [p for p in self.path.iterdir() if p.name.startswith(prefix) and p.name.endswith(".parquet")]:
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed += 1
        return removed

    @property
    def path(self) -> ObjectStoragePath:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(self.url)

    def file(self, name: str) -> ObjectStoragePath:
        return self.path / f"{name}.parquet"

    def _temp(self, filename: str) -> ObjectStoragePath:
        """A temp file to write ``filename`` into before renaming it over the target, its own to
        this writer: mapped tasks side by side may write the same file (the run's shared stage)."""
        return self.path / f".{filename}.{uuid.uuid4().hex}.tmp"

    def write(self, name: str, frame: pd.DataFrame) -> str:
        """Write ``frame`` as ``name.parquet`` (atomically: temp file, then rename) and return its URL."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        target = self.file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self._temp(f"{name}.parquet")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with temp.open("wb") as handle:
            pq.write_table(table, handle, compression="zstd")
        temp.rename(target)
        return str(target)

    def read(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read ``name.parquet`` (only ``columns`` of it, those it has, when given); a frame that was
        never written reads as empty."""
        import pandas as pd
        import pyarrow.parquet as pq

        source = self.file(name)
        if not source.exists():
            return pd.DataFrame(columns=columns)
        with source.open("rb") as handle:
            parquet = pq.ParquetFile(handle)
            wanted = None if columns is None else [c for c in columns if c in parquet.schema_arrow.names]
            return parquet.read(columns=wanted).to_pandas()

    def siblings(self) -> list[Stage]:
        """The other audiences' stages of the same run and window."""
        parent = self.path.parent
        return [Stage(str(p)) for p in parent.iterdir() if p.is_dir() and str(p) != str(self.path)
                and not p.name.startswith("_")] if parent.exists() else []

    def write_chunks(self, name: str, frames: Iterable[pd.DataFrame], columns: list[str]) -> int:
        """Stream frames of text ``columns`` into one Parquet file; returns the rows written.

        Memory holds one chunk at a time, whatever the total.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([(c, pa.string()) for c in columns])
        target = self.file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self._temp(f"{name}.parquet")
        rows = 0
        with temp.open("wb") as handle, pq.ParquetWriter(handle, schema, compression="zstd") as writer:
            for frame in frames:
                text = frame.reindex(columns=columns).astype(object).where(frame.reindex(columns=columns).notna(), None)
                writer.write_table(pa.Table.from_pandas(text, schema=schema, preserve_index=False))
                rows += len(frame)
        temp.rename(target)
        return rows

    def iter_batches(self, name: str, rows: int = 250_000) -> Iterator[pd.DataFrame]:
        """Read ``name.parquet`` back in frames of at most ``rows`` rows."""
        import pyarrow.parquet as pq

        source = self.file(name)
        if not source.exists():
            return
        with source.open("rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows):
                yield batch.to_pandas()

    def exists(self, name: str) -> bool:
        return self.file(name).exists()

    def write_json(self, name: str, payload: Any) -> None:
        """Small metadata (describes, audience stats) as ``name.json`` (atomically, as :meth:`write`)."""
        target = self.path / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self._temp(f"{name}.json")
        temp.write_text(json.dumps(payload, default=str, sort_keys=True))
        temp.rename(target)

    def read_json(self, name: str, default: Any = ...) -> Any:
        """``name.json``; ``default`` when it was never written (without one, that is an error)."""
        source = self.path / f"{name}.json"
        if default is not ... and not source.exists():
            return default
        return json.loads(source.read_text())

