"""Bulk 2.0 CSV reading: pyarrow reads exactly what the csv module reads, or hands the file to it."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any

import pytest

from sandbox.salesforce import bulkcsv

if TYPE_CHECKING:
    from pathlib import Path

PLAIN = [
    "a,b\n1,2\n",
    'a,b\n"x,y","He said ""hi"""\n"",""""\n',
    'a,b\r\n"line1\r\nline2",2\r\n"a\n\nb",3\r\n',
    "\ufeffa,b\nü,😀\n",
    "a,b\n1,2",
    "a,b\r1,2\r",
    "a\nx\ny\n",
    "a,b\n,\n",
]
ODD = [  # the csv module's reading differs from pyarrow's, or it refuses the file
    'a,b\n"ab"c,2\n',
    'a,b\n""c,2\n',
    'a,b\n"a,"x,2\n',
    'a,b\n"abc,2\n',
    'a,b\nab"c,2\n',
    "a,b\n1,2\n\n3,4\n",
    "a,b\r\n1,2\r\n\r\n",
    "a,b\n1\n1,2,3\n",
    "a,b\nx\ry,2\n",
    "a\nx\n\n",
    "\n",
    "",
]


def read_all(path: Path, which: Any) -> list[Any]:
    out: list[Any] = []
    try:
        for item in which(path, ",", 2):
            out.append(item if isinstance(item, list) else
                       ([c.to_pylist() for c in item.cells], item.long_rows, item.echo))
    except csv.Error as e:
        out.append(f"csv.Error: {e}")
    return out


@pytest.mark.parametrize("text", PLAIN)
def test_reads_exactly_as_the_csv_module(tmp_path: Path, text: str) -> None:
    path = tmp_path / "upload.csv"
    path.write_bytes(text.encode())
    assert read_all(path, bulkcsv.read) == read_all(path, bulkcsv._read_with_csv)


@pytest.mark.parametrize(("text", "arrow"), [(t, True) for t in PLAIN] + [(t, False) for t in ODD])
def test_pyarrow_reads_only_plain_files(text: str, arrow: bool) -> None:
    assert (bulkcsv._arrow_table(text.encode(), ",") is not None) is arrow


def test_ragged_rows_keep_their_own_cells(tmp_path: Path) -> None:
    path = tmp_path / "upload.csv"
    path.write_bytes(b"a,b\n1\n1,2,3\n\n")
    _, chunk = bulkcsv.read(path, ",", 10)
    assert isinstance(chunk, bulkcsv.Chunk)
    assert [c.to_pylist() for c in chunk.cells] == [["1", "", ""], ["", "", ""]]
    assert chunk.long_rows == [1] and chunk.echo == ['"1"', '"1","2","3"', ""]
