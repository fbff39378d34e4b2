"""Screening: fill in every unknown label of a compound table of any size.

:func:`screen` reads the table in chunks, featurizes the next chunk in worker processes while
the model predicts the current one, and writes each finished chunk to ``<output>.parts/``, so
that an interrupted run, started again with the same arguments, skips the finished chunks. A
``manifest.json`` there records what the parts were computed from (input file, its size and
modification time, chunk size, model file hash, inference settings); parts of another run are
never reused. The output is written atomically when every chunk is done.

The input is CSV (or .csv.gz), Parquet (read in row batches; cells become text as in a
CSV) or SDF (a row per record, with its SMILES and data items), one file or a folder or glob
of shards of one table (:func:`input_files`). The output is CSV, or Parquet when its name
ends ``.parquet``. The chunks are predicted in this process (:class:`_LocalRunner`) or on a
Dask cluster (:mod:`molddl.inference.cluster`); the rest of the run is the same. What the run may write and how it stops is
:mod:`molddl.inference.outputs` (no output that is an input, one run per output, Ctrl-C /
SIGTERM); the worker processes die with the run
(:func:`~molddl.data.featurizers.base.process_pool`).
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import json
import logging
import re
import shutil
import signal
import sys
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol, cast

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from molddl._version import __version__
from molddl.data.dataset import DualLabelDataset
from molddl.data.featurizers import compute_features
from molddl.data.featurizers.base import process_pool
from molddl.data.loaders import check_header, dataset_from_frame, find_column, not_utf8_error
from molddl.inference import thresholds as cuts
from molddl.inference.outputs import (
    Interrupted,
    check_output,
    output_format,
    output_lock,
    output_paths,
)
from molddl.io import atomic_write, atomic_write_text
from molddl.models.estimator import DualLabelModel

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PART = "part-{:06d}.{}"


def model_inputs(
    model: DualLabelModel, columns: list[str], smiles_column: str | None, source: str
) -> dict[str, Any]:
    """The input columns of ``model`` in a table with ``columns``, as keyword arguments of
    :func:`~molddl.data.loaders.dataset_from_frame`.

    The SMILES column is ``smiles_column`` or the one the model was trained with, matched
    ignoring case; a tabular model needs all its feature columns.
    """
    shown = ", ".join(map(str, columns[:40])) + (" …" if len(columns) > 40 else "")
    pre = model.preprocessor_
    if pre.featurizer is None:
        missing = [c for c in pre.feature_names if c not in columns]
        if missing:
            raise ValueError(
                f"{source}: the model's feature column(s) {', '.join(map(repr, missing[:5]))} "
                f"are missing ({len(missing)} in all); the file has: {shown}"
            )
        return {"feature_columns": list(pre.feature_names)}
    wanted = smiles_column or model.config_.data.smiles_column or "smiles"
    found = find_column(columns, wanted)
    if found is None:
        raise ValueError(
            f"{source}: no SMILES column {wanted!r} (name it with --smiles-column); "
            f"the file has: {shown}"
        )
    return {"smiles_column": found}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_csv(source: str | Path | IO[bytes], **kwargs) -> pd.DataFrame:
    """Cells as text (passed through unchanged); only an empty cell is missing."""
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""], **kwargs)


def _input_format(path: Path) -> str:
    """``parquet`` (by its name, else by its first bytes ``PAR1``), ``sdf`` (``.sdf`` /
    ``.sd``, optionally gzipped) or ``csv``."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".sdf", ".sd")):
        return "sdf"
    if path.suffix.lower() in (".parquet", ".pq"):
        return "parquet"
    with open(path, "rb") as fh:
        return "parquet" if fh.read(4) == b"PAR1" else "csv"


#: the columns an SDF input adds: the record's position in the file and its title line
SDF_RECORD, SDF_TITLE = "sdf_record", "sdf_title"


class _Table:
    """The input table, read a chunk of rows at a time: CSV (or .csv.gz), Parquet (cells
    as text, as in a CSV: only a null or empty cell is missing) or SDF (a row per record:
    its SMILES in the model's SMILES column, ``sdf_record``, ``sdf_title`` and its data
    items as text; an unreadable record keeps its row, without a SMILES)."""

    def __init__(self, path: Path, smiles_column: str = "smiles") -> None:
        self.path = path
        self.format = _input_format(path)
        self.parquet = self.format == "parquet"
        self.compression = "gzip" if path.suffix == ".gz" else None
        self.smiles_column = smiles_column  # the column an SDF's structures go to
        self._sdf_names: list[str] | None = None

    def columns(self) -> list[str]:
        """The column names; an empty table is an error."""
        if self.format == "sdf":
            return self._sdf_columns()
        if self.parquet:
            pf = self._parquet()
            if pf.metadata.num_rows == 0:
                raise ValueError(f"input file {self.path} is a Parquet file without rows")
            check_header(pf.schema_arrow.names, str(self.path))
            return list(pf.schema_arrow.names)
        try:
            head = _read_csv(self.path, nrows=1, compression=self.compression)
        except pd.errors.EmptyDataError:
            raise ValueError(f"input file {self.path} is empty (no header, no rows)") from None
        except UnicodeDecodeError as err:
            raise not_utf8_error(self.path, err) from None
        except (EOFError, gzip.BadGzipFile) as err:
            raise ValueError(f"input file {self.path} is not readable gzip: {err}") from None
        if head.empty:
            raise ValueError(f"input file {self.path} has a header but no data rows")
        raw = pd.read_csv(self.path, nrows=1, header=None, dtype=str, compression=self.compression)
        check_header(list(raw.iloc[0]), str(self.path))  # read_csv renames a repeat "name.1"
        return list(head.columns)

    def progress(self) -> tuple[int, str]:
        """The bar's total and unit: bytes of a CSV or SDF, rows of a Parquet file."""
        if self.parquet:
            return self._parquet().metadata.num_rows, "rows"
        return self.path.stat().st_size, "B"

    def chunks(self, chunk_size: int) -> Generator[tuple[pd.DataFrame, int], None, None]:
        """Chunks of at most ``chunk_size`` rows, each with the progress made (bytes or rows)."""
        if self.parquet:
            yield from self._parquet_chunks(chunk_size)
            return
        if self.format == "sdf":
            yield from self._sdf_chunks(chunk_size)
            return
        with (
            open(self.path, "rb") as fh,
            _read_csv(fh, chunksize=chunk_size, compression=self.compression) as reader,
        ):
            while True:
                try:
                    chunk = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as err:
                    raise not_utf8_error(self.path, err) from None
                except (EOFError, gzip.BadGzipFile) as err:
                    raise ValueError(
                        f"input file {self.path} is not readable gzip: {err}"
                    ) from None
                yield chunk, fh.tell()

    def _parquet(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as err:
            raise ValueError(
                f"input file {self.path} is not a readable Parquet file: {err}"
            ) from None

    def _parquet_chunks(self, chunk_size: int) -> Generator[tuple[pd.DataFrame, int], None, None]:
        import pyarrow as pa

        batches = self._parquet().iter_batches(batch_size=chunk_size)
        rows = 0
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as err:
                raise ValueError(
                    f"input file {self.path}: Parquet rows after {rows} are unreadable: {err}"
                ) from None
            rows += batch.num_rows
            yield _as_text(batch), rows

    @contextlib.contextmanager
    def _sdf_file(self) -> Generator[tuple[IO[bytes], IO[bytes]], None, None]:
        """The SDF's bytes (decompressed) and the file on disk (for the progress made)."""
        with open(self.path, "rb") as raw:
            if self.compression:
                with gzip.open(raw) as fh:
                    yield cast(IO[bytes], fh), raw
            else:
                yield raw, raw

    def _sdf_columns(self) -> list[str]:
        """Every data item named in the file (a first pass over its text), in order of first
        appearance, after the SMILES, record and title columns."""
        if self._sdf_names is not None:
            return self._sdf_names
        names: dict[str, None] = {}
        records = 0
        try:
            with self._sdf_file() as (fh, _):
                for line in fh:
                    if line.startswith(b"$$$$"):
                        records += 1
                    elif line.startswith(b">"):
                        item = _SDF_ITEM.match(line.decode("utf-8", errors="replace"))
                        if item:
                            names.setdefault(item.group(1), None)
        except (EOFError, gzip.BadGzipFile, OSError) as err:
            raise ValueError(f"input file {self.path} is not readable gzip: {err}") from None
        if records == 0:
            raise ValueError(f"input file {self.path} holds no SDF record (no '$$$$' line)")
        fixed = [self.smiles_column, SDF_RECORD, SDF_TITLE]
        taken = [n for n in names if n in fixed]
        if taken:
            raise ValueError(
                f"input file {self.path}: the data item <{taken[0]}> has the name of a column "
                f"molddl adds for an SDF ({', '.join(fixed)}); rename it, or name the SMILES "
                f"column otherwise with --smiles-column"
            )
        self._sdf_names = fixed + list(names)
        return self._sdf_names

    def _sdf_chunks(self, chunk_size: int) -> Generator[tuple[pd.DataFrame, int], None, None]:
        from rdkit import Chem, RDLogger

        columns = self._sdf_columns()
        # an unreadable record is reported in its row (rdkit-stubs drop the re-export)
        RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]
        try:
            with self._sdf_file() as (fh, raw):
                rows: list[dict[str, Any]] = []
                for i, mol in enumerate(Chem.ForwardSDMolSupplier(fh), start=1):
                    row: dict[str, Any] = {SDF_RECORD: str(i)}
                    if mol is not None:
                        row[self.smiles_column] = Chem.MolToSmiles(mol)
                        row[SDF_TITLE] = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
                        row.update({n: mol.GetProp(n) for n in mol.GetPropNames()})
                    rows.append(row)
                    if len(rows) == chunk_size:
                        yield _sdf_frame(rows, columns), raw.tell()
                        rows = []
                if rows:
                    yield _sdf_frame(rows, columns), raw.tell()
        finally:
            RDLogger.EnableLog("rdApp.*")  # type: ignore[attr-defined]


#: an SDF data header line, ``>  <NAME>`` (anything else on the line is ignored)
_SDF_ITEM = re.compile(r"^>[^<]*<([^>]+)>")


#: file endings of a table ``molddl predict`` reads (a folder of shards: its files so named)
INPUT_ENDINGS = (".csv", ".csv.gz", ".parquet", ".pq", ".sdf", ".sdf.gz", ".sd", ".sd.gz")


def _natural(path: Path) -> list[list]:
    """Sort key of a shard: its path, with runs of digits compared as numbers
    (``part-2`` before ``part-10``)."""
    return [[int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p)] for p in path.parts]


def input_files(spec: str | Path) -> list[Path]:
    """The file(s) ``--input`` names: a file; a folder, whose files with an input ending
    (:data:`INPUT_ENDINGS`) are shards of one table; or a glob pattern (``shards/*.csv``,
    ``**`` for subfolders). Shards are read in the order of their names, numbers in names
    compared as numbers, so the output's rows are in that order."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = [
            p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(INPUT_ENDINGS)
        ]
        if not files:
            raise ValueError(
                f"input folder {path} holds no {', '.join(INPUT_ENDINGS)} file to predict"
            )
        return sorted(files, key=_natural)
    if glob.has_magic(str(spec)):
        files = [Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file()]
        if not files:
            raise FileNotFoundError(f"no input file matches {spec}")
        return sorted(files, key=_natural)
    raise FileNotFoundError(f"input file {spec} does not exist")


class _Inputs:
    """The shards of one input table, read one after the other: one format, and the same
    columns in each (in any order; a CSV or Parquet shard's are put in the first shard's
    order). SDF shards take the union of their data items, empty where a record has none."""

    def __init__(self, paths: list[Path], smiles_column: str) -> None:
        self.tables = [_Table(p, smiles_column) for p in paths]
        first = self.tables[0]
        for table in self.tables[1:]:
            if table.format != first.format:
                raise ValueError(
                    f"input shards {first.path} ({first.format}) and {table.path} "
                    f"({table.format}) are of two formats; give shards of one format"
                )
        self.format = first.format
        self._columns: list[str] | None = None

    def columns(self) -> list[str]:
        if self._columns is not None:
            return self._columns
        columns = self.tables[0].columns()
        for table in self.tables[1:]:
            theirs = table.columns()
            if self.format == "sdf":
                columns = columns + [c for c in theirs if c not in columns]
            elif set(theirs) != set(columns):
                missing = [c for c in columns if c not in theirs]
                extra = [c for c in theirs if c not in columns]
                raise ValueError(
                    f"input shard {table.path}: its columns differ from those of "
                    f"{self.tables[0].path} (missing: {', '.join(missing) or 'none'}; "
                    f"extra: {', '.join(extra) or 'none'}); shards of one table have the "
                    f"same columns"
                )
        self._columns = columns
        return columns

    def progress(self) -> tuple[int, str]:
        """The bar's total (over every shard) and unit."""
        totals = [t.progress() for t in self.tables]
        return sum(n for n, _ in totals), totals[0][1]

    def chunks(self, chunk_size: int) -> Generator[tuple[pd.DataFrame, int, str, int], None, None]:
        """Every shard's chunks in turn, each with the progress made over the shards, its
        shard and the position of its first row in that shard (0-based)."""
        columns = self.columns()
        before = 0
        for table in self.tables:
            end = 0  # rows of this shard read so far
            with contextlib.closing(table.chunks(chunk_size)) as chunks:
                for chunk, progress in chunks:
                    if list(chunk.columns) != columns:
                        chunk = chunk.reindex(columns=columns)
                    first_row, end = end, end + len(chunk)
                    yield chunk, before + progress, str(table.path), first_row
            before += table.progress()[0]


def _sdf_frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """SDF records as :func:`_read_csv` reads a CSV: text cells, an empty one missing."""
    frame = pd.DataFrame.from_records(rows, columns=columns).astype(object)
    return frame.where(frame.notna() & (frame != ""), np.nan)


def _as_text(batch) -> pd.DataFrame:
    """A Parquet record batch as :func:`_read_csv` reads a CSV: every cell as text (``str()``
    of the value, as ``DataFrame.to_csv`` would write it), a null or empty cell missing."""
    frame = batch.to_pandas(ignore_metadata=True, integer_object_nulls=True, date_as_object=True)

    def text(value: Any) -> str:
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="backslashreplace")
        return value if isinstance(value, str) else str(value)

    for column in frame.columns:
        frame[column] = frame[column].astype(object).map(text, na_action="ignore")
    return frame.where(frame.notna() & (frame != ""), np.nan)


def _open_parts(parts: Path, manifest: dict) -> set[int]:
    """Indices of the finished parts of this very run; parts of another run are removed."""
    path = parts / MANIFEST
    if parts.exists():
        if not path.exists():
            raise ValueError(
                f"{parts} exists but holds no {MANIFEST}: it is not molddl's; remove it or "
                f"choose another --output"
            )
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if old == manifest:
            done = {int(p.stem.removeprefix("part-")) for p in parts.glob("part-*.*")}
            if done:
                logger.info("resuming: %d finished part(s) in %s are kept", len(done), parts)
            return done
        logger.warning(
            "%s holds parts of another run (input file, model or chunk size differ): starting over",
            parts,
        )
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
    return set()


def _chunk_dataset(
    model: DualLabelModel, chunk: pd.DataFrame, first_row: int, inputs: dict[str, Any], source: str
) -> DualLabelDataset:
    """The samples of ``chunk``, with the model's labels (missing columns: unknown)."""
    names = [s.name for s in model.preprocessor_.labels]
    frame = chunk.assign(**{n: np.nan for n in names if n not in chunk.columns})
    return dataset_from_frame(
        frame,
        names,
        label_specs=model.preprocessor_.labels,
        split_column=None,
        name=Path(source).name.split(".")[0],
        source=source,
        first_row=first_row,
        **inputs,
    )


def _predict_chunk(
    model: DualLabelModel,
    chunk: pd.DataFrame,
    data: DualLabelDataset,
    n_jobs: int,
    features: dict | None = None,
    thresholds: dict[str, float] | None = None,
) -> pd.DataFrame:
    """``chunk`` with its unknown labels predicted and the prediction columns added."""
    table = model.predict(
        data, n_jobs=n_jobs, use_cache=False, features=features, thresholds=thresholds
    )
    out = chunk.copy()
    for col in table.columns.drop(["id", "smiles"], errors="ignore"):
        out[col] = table[col].to_numpy()
    for kind in model.preprocessor_.kinds:
        for col in kind.class_columns():  # classes as integers, an empty cell where unknown
            if col in out:
                out[col] = out[col].astype("Int64")
    return out


class _Lookahead:
    """Featurizes the next chunk in the worker processes, from a background thread, while the
    model predicts the current one in this process (the two took about equal time)."""

    def __init__(self, model: DualLabelModel, workers: int) -> None:
        self.featurizer = model.preprocessor_.make_featurizer()
        self.workers = workers
        on = self.featurizer is not None and workers > 1
        self.pool = process_pool(workers) if on else None  # workers die with this process
        self.thread = ThreadPoolExecutor(max_workers=1) if on else None
        if self.pool is not None:  # start the workers now, from this thread, not later from
            list(self.pool.map(abs, range(workers)))  # the background one while torch runs

    def submit(self, data: DualLabelDataset) -> Future | None:
        if self.thread is None or data.smiles is None:
            return None
        return self.thread.submit(
            compute_features, self.featurizer, data.smiles, self.workers, self.pool
        )

    def close(self) -> None:
        if self.thread is not None:
            assert self.pool is not None  # started with the thread
            self.thread.shutdown(cancel_futures=True)
            self.pool.shutdown(cancel_futures=True)


def _write_part(part: Path, frame: pd.DataFrame) -> None:
    """One finished chunk, as CSV or (``.parquet``) as a Parquet file, atomically."""
    if part.suffix == ".parquet":
        atomic_write(part, lambda fh: frame.to_parquet(fh, index=False), mode="wb")
    else:
        atomic_write(part, lambda fh: frame.to_csv(fh, index=False))


def _concatenate(parts: list[Path], output: Path) -> None:
    """Write the parts, in order, to ``output`` atomically: CSV text with one header, or one
    Parquet file whose column types are the first part's (a column without any value there
    is text), one row group per part."""
    if output_format(output) == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        first = pq.read_schema(parts[0])
        schema = pa.schema(
            [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in first]
        )

        def write(fh: IO[bytes]) -> None:
            with pq.ParquetWriter(fh, schema) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part).cast(schema))

        atomic_write(output, write, mode="wb")
        return

    def write_csv(fh: IO[bytes]) -> None:
        for i, part in enumerate(parts):
            with open(part, "rb") as src:
                if i:
                    src.readline()
                shutil.copyfileobj(src, fh)

    atomic_write(output, write_csv, mode="wb")


def screen(
    model: DualLabelModel,
    input_path: str | Path,
    output: str | Path,
    *,
    model_path: str | Path,
    smiles_column: str | None = None,
    chunk_size: int = 20000,
    workers: int = 1,
    thresholds: dict[str, float] | None = None,
    dask: str | None = None,
) -> Path:
    """Write ``input_path`` (CSV, .csv.gz, Parquet or SDF, .sdf.gz; or a folder or glob of
    such shards, :func:`input_files`) to ``output`` (CSV, or Parquet for a name ending
    ``.parquet`` / ``.pq``) with every unknown label predicted.

    Parameters
    ----------
    model
        The trained model, with the inference settings to use.
    model_path
        The file ``model`` was loaded from; its hash keys the resumable parts, and Dask
        workers load the model from it.
    smiles_column
        The SMILES column (default: the model's, matched ignoring case); for an SDF, the
        column its structures are written to (default: the model's).
    chunk_size
        Rows read, featurized and written at a time; bounds memory. On Dask, a chunk is a
        partition: the unit a worker predicts and a resumed run skips.
    workers
        Processes that featurize molecules; with more than one, the model runs on the cores
        they leave (at least one thread). With ``dask="local"``: the local cluster's worker
        processes.
    thresholds
        Decision thresholds (label → cut) replacing the model's validation-chosen ones
        (:mod:`molddl.inference.thresholds`) for the ``<label>_class`` columns.
    dask
        Predict the chunks on a Dask cluster (:mod:`molddl.inference.cluster`): a
        scheduler's address (``tcp://host:8786``), a scheduler file (JSON, ``dask scheduler
        --scheduler-file``), or ``"local"`` for a cluster of ``workers`` processes on this
        machine. The output is the same, row for row, as without it.

    Raises
    ------
    ValueError
        For an output that is the input or the model file (:func:`check_output`) or a
        folder, an output another run is writing (:func:`output_lock`) or that cannot be
        written, for input that is not UTF-8 CSV or readable Parquet, and for a Dask
        worker that cannot predict (its model file missing or another).
    Interrupted
        On Ctrl-C (or a signal a caller turns into it), with the finished parts kept.
    """
    if chunk_size < 1 or workers < 1:
        raise ValueError("--chunk-size and --workers must be at least 1")
    output = Path(output)
    files = input_files(input_path)
    for file in files:
        check_output(output, file, model_path)
    cfg = model.config_
    table = _Inputs(files, smiles_column or cfg.data.smiles_column or "smiles")
    shown = str(input_path) if len(files) > 1 else str(files[0])
    inputs = model_inputs(model, table.columns(), smiles_column, shown)
    manifest = {
        "input": [
            {"path": str(f.resolve()), "size": f.stat().st_size, "mtime_ns": f.stat().st_mtime_ns}
            for f in files
        ],
        "chunk_size": chunk_size,
        "model_sha256": _sha256(Path(model_path)),
        "inputs": inputs,
        "molddl_version": __version__,
        "inference": cfg.to_dict()["inference"],
        "device": cfg.device,
        "thresholds": cuts.merged(model.thresholds_, thresholds),
        "format": output_format(output),
    }
    parts_dir = output_paths(output)["parts"]
    with output_lock(output):
        done = _open_parts(parts_dir, manifest)
        if dask is None:
            runner: _Runner = _LocalRunner(model, workers, inputs, thresholds)
        else:
            from molddl.inference import cluster  # imports dask: only when it is used

            job = cluster.Job(
                model_path=str(Path(model_path).resolve()),
                model_sha256=manifest["model_sha256"],
                runtime={"inference": manifest["inference"], "device": cfg.device},
                inputs=inputs,
                thresholds=thresholds,
            )
            runner = cluster.DaskRunner(dask, workers, job, _write_part)
        with contextlib.closing(runner):
            parts = _screen_chunks(table, parts_dir, done, runner, chunk_size, manifest["format"])
        if not parts:
            raise ValueError(f"input {shown} has no rows")
        _concatenate(parts, output)
        shutil.rmtree(parts_dir)
    return output


class _Runner(Protocol):
    """Predicts chunks into their parts: ``submit`` one (the part may be written later),
    ``finish`` writes every part submitted, ``close`` releases what the runner holds."""

    def submit(self, part: Path, chunk: pd.DataFrame, first_row: int, source: str) -> None: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


class _LocalRunner:
    """Predicts in this process, one chunk at a time, while the worker processes featurize
    the next one (:class:`_Lookahead`)."""

    def __init__(
        self,
        model: DualLabelModel,
        workers: int,
        inputs: dict[str, Any],
        thresholds: dict[str, float] | None,
    ) -> None:
        self.model, self.workers, self.inputs, self.thresholds = model, workers, inputs, thresholds
        self.ahead = _Lookahead(model, workers)
        self.threads = torch.get_num_threads()
        if self.ahead.pool is not None:
            # the workers featurize the next chunk on their own cores meanwhile; more model
            # threads than the cores left only fight them (benchmarks/screening.py: 2 cores,
            # 2 workers, 100,000 rows in 41 s instead of 50 s)
            torch.set_num_threads(max(1, self.threads - workers))
        self.pending: tuple | None = None  # (part, chunk, data, features) of the chunk in flight

    def submit(self, part: Path, chunk: pd.DataFrame, first_row: int, source: str) -> None:
        data = _chunk_dataset(self.model, chunk, first_row, self.inputs, source)
        queued = (part, chunk, data, self.ahead.submit(data))
        self.finish()
        self.pending = queued

    def finish(self) -> None:
        if self.pending is None:
            return
        part, chunk, data, features = self.pending
        self.pending = None
        predicted = _predict_chunk(
            self.model,
            chunk,
            data,
            self.workers,
            None if features is None else features.result(),
            self.thresholds,
        )
        _write_part(part, predicted)

    def close(self) -> None:
        self.ahead.close()
        torch.set_num_threads(self.threads)


def _screen_chunks(
    table: _Inputs,
    parts_dir: Path,
    done: set[int],
    runner: _Runner,
    chunk_size: int,
    fmt: str,
) -> list[Path]:
    """Have ``runner`` predict every chunk of ``table`` not ``done`` into its part (Parquet
    or CSV); returns every part, in the order of the input's rows."""
    parts: list[Path] = []
    total, unit = table.progress()
    with (
        tqdm(
            total=total,
            unit=unit,
            unit_scale=True,
            desc="predict",
            file=sys.stderr,
            disable=None,  # no bar when stderr is not a terminal
        ) as bar,
        logging_redirect_tqdm(),
        contextlib.closing(table.chunks(chunk_size)) as chunks,
    ):
        try:
            for i, (chunk, progress, source, first_row) in enumerate(chunks):
                part = parts_dir / PART.format(i, fmt)
                parts.append(part)
                bar.update(progress - bar.n)
                if i not in done:
                    runner.submit(part, chunk, first_row, source)
            runner.finish()
        except KeyboardInterrupt as err:
            note = (
                f"{len(list(parts_dir.glob('part-*.*')))} finished part(s) kept in "
                f"{parts_dir}; run the same command to resume"
            )
            raise Interrupted(getattr(err, "signum", signal.SIGINT), note) from None
    return parts
