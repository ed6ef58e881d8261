"""A site's own data: a CSV file read under a declared schema, checked before any training.

A deployed node trains on a file its operator chose, not on a bundled partition. The schema
(feature columns and their types, the label column, the allowed labels) is declared in the
node's local config, so a malformed file fails here, loudly and in one line, instead of
inside training. The reason travels to the coordinator as the node's error reply and into
the ledger, so a `LocalDataError` names the file (its name, not its directory), the columns
and the data rows, and never quotes a cell: a site's data must not leave the site in an
error message.

Reading is strict and streamed: one row's bytes at a time, each row bounded in size, numbers
kept as float32 and nothing else, so a hostile or huge file costs bounded memory per row and
never more than the numbers it holds.
"""

from __future__ import annotations

import csv
import io
import math
import re
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from fedgov.datasets import Dataset, check_dataset
from governance.errors import FedgovError, UsageError
from governance.private_files import write_atomic

FEATURE_TYPES = ("float", "int")
MAX_ROW_BYTES = 1 << 20  # one row, quoted line breaks included: 1 MiB holds ~50,000 numbers
SCHEMA_KEYS = ("features", "label", "labels", "max-bad-fraction", "shape")
EXAMPLES = 3  # data rows named in a message; the rest are counted

_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_INT = re.compile(r"[+-]?[0-9]{1,19}")
_FLOAT32_OVERFLOW = float.fromhex("0x1.ffffffp+127")  # the smallest magnitude that rounds to float32 inf
_INT64 = (-(2**63), 2**63 - 1)
_BOM = b"\xef\xbb\xbf"
_SPACE = " \t"


class LocalDataError(FedgovError):
    """The node's data file does not match its schema; the message is the reason the node replies with.

    A FedgovError, not a PolicyError: no governance policy refused anything, the site's file
    is malformed, and the coordinator must be able to tell the two apart in its record. Nor a
    UsageError: that is a bad flag or config (a bad schema is one), caught as such by callers.
    Exit code 2, like other bad input: the operator fixes the file and starts again.
    """

    exit_code = 2


@dataclass(frozen=True)
class Feature:
    """One feature column: its header name and its type ("float" or "int")."""

    name: str
    type: str


@dataclass(frozen=True)
class DataSchema:
    """What a site's CSV must hold: feature columns, the label column and its allowed values.

    `labels` are the label values as written in the CSV; a label's index (what the model
    predicts) is its position here, so every node of a federation must list them in the same
    order. `max_bad_fraction` is the share of rows with a NaN, Inf or empty feature value that
    is tolerated (those rows are dropped); above it the file is refused. `shape`, when set, is
    the shape of one example as the model takes it (digits: 1 x 8 x 8); the features fill it
    in order. Without it an example is the flat vector of features.
    """

    features: tuple[Feature, ...]
    label: str
    labels: tuple[str, ...]
    max_bad_fraction: float = 0.0
    shape: tuple[int, ...] | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], source: str) -> DataSchema:
        """Parse the schema table of a node's TOML config; a bad one fails in one line naming the key.

        `source` says where the table came from (e.g. "node.toml [data.schema]") and starts
        every message.
        """
        if not isinstance(mapping, Mapping):
            raise UsageError(f"{source}: the schema must be a table with keys {', '.join(SCHEMA_KEYS)}")
        unknown = sorted(set(mapping) - set(SCHEMA_KEYS))
        if unknown:
            raise UsageError(f"{source}: unknown key {unknown[0]!r}; a schema has the keys {', '.join(SCHEMA_KEYS)}")
        for key in ("features", "label", "labels"):
            if key not in mapping:
                raise UsageError(f"{source}: key {key!r} is missing; {_HINTS[key]}")
        features = _parse_features(mapping["features"], source)
        label = mapping["label"]
        if not isinstance(label, str) or not label:
            raise UsageError(f"{source}: key 'label' must be the label column's name; {_HINTS['label']}")
        if label in {f.name for f in features}:
            raise UsageError(f"{source}: key 'label' names {label!r}, which is also a feature; "
                             "a column is a feature or the label, not both")
        labels = _parse_labels(mapping["labels"], source)
        fraction = mapping.get("max-bad-fraction", 0.0)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
            raise UsageError(f"{source}: key 'max-bad-fraction' must be a number from 0 up to (not including) 1, "
                             f"the share of rows with NaN, Inf or empty features that may be dropped; e.g. 0.01")
        shape = _parse_shape(mapping.get("shape"), len(features), source)
        return cls(features, label, labels, float(fraction), shape)

    def to_mapping(self) -> dict[str, Any]:
        """The schema as the TOML table `from_mapping` reads."""
        table: dict[str, Any] = {"features": {f.name: f.type for f in self.features}, "label": self.label,
                                 "labels": list(self.labels), "max-bad-fraction": self.max_bad_fraction}
        if self.shape is not None:
            table["shape"] = list(self.shape)
        return table


_HINTS = {
    "features": 'declare each feature column and its type, e.g. features = { age = "int", weight = "float" }',
    "label": 'e.g. label = "diagnosis"',
    "labels": 'list the label values as written in the CSV, e.g. labels = ["benign", "malignant"]',
}


def _parse_features(value: Any, source: str) -> tuple[Feature, ...]:
    if not isinstance(value, Mapping) or not value:
        raise UsageError(f"{source}: key 'features' must be a table of at least one column; {_HINTS['features']}")
    features = []
    for name, kind in value.items():
        if not name:
            raise UsageError(f"{source}: key 'features' holds an empty column name; name each column as in the header")
        if kind not in FEATURE_TYPES:
            raise UsageError(f"{source}: features.{name} must be \"float\" or \"int\", got {kind!r}")
        features.append(Feature(name, kind))
    return tuple(features)


def _parse_labels(value: Any, source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{source}: key 'labels' must be a list of non-empty strings; {_HINTS['labels']}")
    if len(value) < 2:
        raise UsageError(f"{source}: key 'labels' must list at least two values, every class of the federation")
    repeated = next((v for i, v in enumerate(value) if v in value[:i]), None)
    if repeated is not None:
        raise UsageError(f"{source}: key 'labels' lists {repeated!r} twice; each label value appears once")
    return tuple(value)


def _parse_shape(value: Any, num_features: int, source: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or not value
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value)):
        raise UsageError(f"{source}: key 'shape' must be a list of whole numbers > 0, e.g. shape = [1, 8, 8]")
    if math.prod(value) != num_features:
        raise UsageError(f"{source}: key 'shape' {value} holds {math.prod(value)} values but the schema declares "
                         f"{num_features} features; their counts must match")
    return tuple(value)


# -- the bundled datasets, as CSV ------------------------------------------------------------

_MEASURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
             "concave_points", "symmetry", "fractal_dimension")
_BUNDLED = {
    "breast-cancer": DataSchema(
        tuple(Feature(n, "float") for n in (*(f"mean_{m}" for m in _MEASURES), *(f"{m}_error" for m in _MEASURES),
                                            *(f"worst_{m}" for m in _MEASURES))),
        label="diagnosis", labels=("malignant", "benign")),  # sklearn's target: 0 malignant, 1 benign
    "digits": DataSchema(
        tuple(Feature(f"pixel_{r}_{c}", "float") for r in range(8) for c in range(8)),
        label="digit", labels=tuple(str(d) for d in range(10)), shape=(1, 8, 8)),
}


def schema_for(dataset_name: str) -> DataSchema:
    """The schema of a bundled dataset, for writing it out as a node's own CSV (a local rehearsal)."""
    check_dataset(dataset_name)
    return _BUNDLED[dataset_name]


def write_csv(path: str | Path, dataset: Dataset, schema: DataSchema) -> None:
    """Write `dataset` as a CSV that `load_csv(path, schema)` reads back to the same x and y.

    Floats are written in the shortest form that reads back to the same float32. The file is
    replaced atomically and readable by its owner only (0600): it stands for a site's private data.
    """
    x = dataset.x.reshape(len(dataset), -1)
    if x.shape[1] != len(schema.features):
        raise UsageError(f"dataset {dataset.name!r} has {x.shape[1]} features, the schema declares "
                         f"{len(schema.features)}")
    if len(dataset) and not 0 <= int(dataset.y.min()) <= int(dataset.y.max()) < len(schema.labels):
        raise UsageError(f"dataset {dataset.name!r} has label indices outside 0..{len(schema.labels) - 1}")
    text = x.astype(np.float32).astype(str)
    for j, feature in enumerate(schema.features):
        if feature.type == "int":
            column = x[:, j]
            if not np.all(np.isfinite(column) & (column == np.round(column))):
                raise UsageError(f"dataset {dataset.name!r}: feature {feature.name!r} is declared int but holds "
                                 "values that are not whole numbers")
            text[:, j] = column.astype(np.int64).astype(str)

    def write(fh: BinaryIO) -> None:
        out = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*schema.feature_names, schema.label])
        for row, label in zip(text.tolist(), dataset.y.tolist()):
            writer.writerow([*row, schema.labels[label]])
        out.flush()
        out.detach()  # leave fh open for write_atomic to close

    write_atomic(Path(path), write, durable=False)


# -- reading ----------------------------------------------------------------------------------

def load_csv(path: str | Path, schema: DataSchema) -> Dataset:
    """Read and check a site's CSV under `schema`; any mismatch raises LocalDataError in one line.

    What the file must be, and what is tolerated:
    - UTF-8 text (a leading byte-order mark, as spreadsheets write, is skipped); a header line,
      then one row per example. Blank lines are skipped. Each row at most MAX_ROW_BYTES.
    - The header names every schema column, each once. Extra columns are ignored (a site may
      keep identifiers or notes beside its features), but no column name may appear twice.
    - Every row has as many fields as the header.
    - A float column holds decimal numbers within float32 range, or NaN/Inf; an int column
      holds whole numbers in int64 range (as float32 features, so exact up to 2**24). Spaces
      around a number are allowed. An empty feature value is missing: it, NaN and Inf make a
      row bad. Bad rows are dropped when their share is at most `max_bad_fraction`, else the
      file is refused.
    - The label column holds only the schema's labels, matched exactly as written.
    - At least one data row.

    Rows are named as "data row N": the Nth row after the header, blank rows counted, so data
    row N sits on line N+1 of the file unless a quoted field spans lines. The returned Dataset
    is named after the file; its x has the schema's `shape` per example when one is declared.
    The csv module's process-wide field size limit is left as it is.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        what = "no such file" if not path.exists() else "not a regular file"
        raise LocalDataError(f"{name}: cannot read the data file: {what}")
    try:
        with open(path, "rb") as fh:
            return _Reader(name, schema).read(fh)
    except OSError as err:
        raise LocalDataError(f"{name}: cannot read the data file: {err.strerror or type(err).__name__}") from None


class _Reader:
    """One pass over a CSV: the header, then rows parsed into float32 and label indices."""

    def __init__(self, name: str, schema: DataSchema) -> None:
        self.name = name
        self.schema = schema
        self.row = 0  # the row being read: 0 is the header
        self.pending = 0  # bytes read towards the row being read

    def where(self) -> str:
        return "the header" if self.row == 0 else f"data row {self.row}"

    def fail(self, message: str) -> LocalDataError:
        return LocalDataError(f"{self.name}: {message}")

    def lines(self, fh: BinaryIO) -> Iterator[str]:
        """The file's lines as text, each checked for UTF-8 and NUL, each row bounded in bytes."""
        first = True
        while line := fh.readline(MAX_ROW_BYTES + 1):
            if first and line.startswith(_BOM):
                line = line[len(_BOM):]
            first = False
            self.pending += len(line)
            if self.pending > MAX_ROW_BYTES:
                raise self.fail(f"{self.where()} is longer than {MAX_ROW_BYTES} bytes; no CSV row of numbers is")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail(f"{self.where()} is not UTF-8 text; save the file as UTF-8 (\"CSV UTF-8\")") from None
            if "\0" in text:
                raise self.fail(f"{self.where()} holds a NUL byte, which UTF-8 CSV text never does")
            yield text

    def records(self, fh: BinaryIO) -> Iterator[list[str]]:
        reader = csv.reader(self.lines(fh), strict=True)
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise self.fail(f"{self.where()} is not valid CSV ({err})") from None
            yield record
            self.row += 1
            self.pending = 0

    def read(self, fh: BinaryIO) -> Dataset:
        schema = self.schema
        records = self.records(fh)
        header = next(records, None)
        if header is None:
            raise self.fail("the file is empty; it needs a header line naming the columns, then data rows")
        columns = self.columns(header)
        features = [(columns[f.name], f.type == "int") for f in schema.features]
        label_at = columns[schema.label]
        label_index = {label: i for i, label in enumerate(schema.labels)}
        width = len(header)

        x = array("f")
        y = array("q")
        bad = _Faults()  # rows with NaN, Inf or empty features
        bad_at = array("q")  # their positions in x and y, to drop them
        type_faults: dict[str, _Faults] = {}  # by column, in the order they were met
        label_faults = _Faults()
        rows = 0
        for record in records:
            if not record:
                continue  # a blank line
            rows += 1
            if len(record) != width:
                raise self.fail(f"{self.where()} has {len(record)} fields, the header has {width}")
            values = []
            finite = True
            for (at, is_int), feature in zip(features, schema.features):
                value = _number(record[at], is_int)
                if value is None:
                    type_faults.setdefault(feature.name, _Faults()).add(self.row)
                    continue
                finite = finite and math.isfinite(value)
                values.append(value)
            label = label_index.get(record[label_at])
            if label is None:
                label_faults.add(self.row)
            if type_faults or label_faults.count:
                continue  # the file is refused: read on only to count
            if not finite:
                bad.add(self.row)
                bad_at.append(len(y))
            x.extend(values)
            y.append(label)

        if rows == 0:
            raise self.fail("the header is there but no data rows follow")
        if type_faults:
            raise self.fail(self.type_message(type_faults))
        if label_faults.count:
            allowed = ", ".join(repr(v) for v in schema.labels[:10]) + (", ..." if len(schema.labels) > 10 else "")
            raise self.fail(f"column {schema.label!r} holds labels the schema does not list in "
                            f"{label_faults}; allowed: {allowed}")
        if bad.count / rows > schema.max_bad_fraction:
            raise self.fail(f"{bad.count} of {rows} data rows ({bad.count / rows:.1%}) have NaN, Inf or empty "
                            f"feature values ({bad}), over max-bad-fraction = {schema.max_bad_fraction:g}")
        xs = np.frombuffer(x, dtype=np.float32).reshape(-1, len(features))
        ys = np.frombuffer(y, dtype=np.int64)
        if bad.count:
            keep = np.ones(len(ys), dtype=bool)
            keep[np.frombuffer(bad_at, dtype=np.int64)] = False
            xs, ys = xs[keep], ys[keep]
        # never empty here: all rows bad is a share of 1, and max-bad-fraction is below 1
        return Dataset(self.name, xs.reshape(-1, *(schema.shape or (len(features),))), ys, len(schema.labels))

    def columns(self, header: list[str]) -> dict[str, int]:
        """Header name -> position, after checking names are unique and the schema's are all there."""
        if not header:
            raise self.fail("line 1 is blank; the first line must be the header naming the columns")
        seen: dict[str, int] = {}
        for i, column in enumerate(header):
            if column in seen:
                raise self.fail(f"the header names column {_short(column)} twice (columns {seen[column] + 1} "
                                f"and {i + 1}); column names must be unique")
            seen[column] = i
        wanted = [*self.schema.feature_names, self.schema.label]
        missing = [c for c in wanted if c not in seen]
        if missing:
            listed = ", ".join(repr(c) for c in missing[:EXAMPLES])
            more = f" and {len(missing) - EXAMPLES} more" if len(missing) > EXAMPLES else ""
            plural = "s" if len(missing) > 1 else ""
            raise self.fail(f"the header lacks the schema's column{plural} {listed}{more} "
                            f"(it has {len(header)} columns; names must match exactly)")
        return seen

    def type_message(self, faults: dict[str, _Faults]) -> str:
        column, rows = next(iter(faults.items()))
        kind = next(f.type for f in self.schema.features if f.name == column)
        should = "whole numbers (int64 range)" if kind == "int" else "decimal numbers (float32 range)"
        others = list(faults)[1:]
        also = ""
        if others:
            listed = ", ".join(repr(c) for c in others[:EXAMPLES])
            more = f" and {len(others) - EXAMPLES} more" if len(others) > EXAMPLES else ""
            also = f"; so do columns {listed}{more}" if len(others) > 1 else f"; so does column {listed}"
        return f"column {column!r} ({kind}) must hold {should}, not so in {rows}{also}"


class _Faults:
    """Data rows with one fault: the first few by number, the rest counted (a huge bad file stays small)."""

    def __init__(self) -> None:
        self.count = 0
        self.examples: list[int] = []

    def add(self, row: int) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(row)

    def __str__(self) -> str:
        """'data row 4', 'data rows 4, 8, 15' or 'data rows 4, 8, 15 and 9 more'."""
        listed = ", ".join(str(r) for r in self.examples)
        more = f" and {self.count - len(self.examples)} more" if self.count > len(self.examples) else ""
        return f"data row{'s' if self.count > 1 else ''} {listed}{more}"


def _short(name: str, limit: int = 40) -> str:
    """A header name as quoted in a message: a hostile header may be a megabyte long."""
    return repr(name) if len(name) <= limit else repr(name[:limit]) + "..."


def _number(text: str, is_int: bool) -> float | None:
    """The value of one feature field (NaN when empty), or None when it is no number of its type."""
    text = text.strip(_SPACE)
    if not text:
        return math.nan
    if is_int:
        if _INT.fullmatch(text):
            value = int(text)
            return float(value) if _INT64[0] <= value <= _INT64[1] else None
        return None
    if _FLOAT.fullmatch(text):
        value = float(text)
        return value if abs(value) < _FLOAT32_OVERFLOW else None
    if _NON_FINITE.fullmatch(text):
        return float(text)
    return None
