"""Screening: fill in every unknown label of a compound table of any size.

:func:`screen` reads the table in chunks, featurizes the next chunk in worker processes while
the model predicts the current one, and writes each finished chunk to ``<output>.parts/``, so
that an interrupted run, started again with the same arguments, skips the finished chunks. A
``manifest.json`` there records what the parts were computed from (input file, its size and
modification time, chunk size, model file hash, inference settings); parts of another run are
never reused. The output is written atomically when every chunk is done.

The input is CSV (or .csv.gz) or Parquet (read in row batches; cells become text as in a
CSV). What the run may write and how it stops is :mod:`molddl.inference.outputs` (no output
that is an input, one run per output, Ctrl-C / SIGTERM); the worker processes die with the
run (:func:`~molddl.data.featurizers.base.process_pool`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import shutil
import signal
import sys
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from molddl._version import __version__
from molddl.data.dataset import DualLabelDataset
from molddl.data.featurizers import compute_features
from molddl.data.featurizers.base import process_pool
from molddl.data.loaders import check_header, dataset_from_frame, not_utf8_error
from molddl.inference.outputs import Interrupted, check_output, output_lock, output_paths
from molddl.io import atomic_write, atomic_write_text
from molddl.models.estimator import DualLabelModel

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PART = "part-{:06d}.csv"


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
    found = [c for c in columns if c == wanted] or [
        c for c in columns if str(c).lower() == wanted.lower()
    ]
    if not found:
        raise ValueError(
            f"{source}: no SMILES column {wanted!r} (name it with --smiles-column); "
            f"the file has: {shown}"
        )
    return {"smiles_column": found[0]}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_csv(source: str | Path | IO[bytes], **kwargs) -> pd.DataFrame:
    """Cells as text (passed through unchanged); only an empty cell is missing."""
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""], **kwargs)


def _is_parquet(path: Path) -> bool:
    """A Parquet file: by its name, else by its first bytes (``PAR1``)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


class _Table:
    """The input table, read a chunk of rows at a time: CSV (or .csv.gz), or Parquet (cells
    as text, as in a CSV: only a null or empty cell is missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parquet = _is_parquet(path)
        self.compression = "gzip" if path.suffix == ".gz" else None

    def columns(self) -> list[str]:
        """The column names; an empty table is an error."""
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
        """The bar's total and unit: bytes of a CSV, rows of a Parquet file."""
        if self.parquet:
            return self._parquet().metadata.num_rows, "rows"
        return self.path.stat().st_size, "B"

    def chunks(self, chunk_size: int) -> Generator[tuple[pd.DataFrame, int], None, None]:
        """Chunks of at most ``chunk_size`` rows, each with the progress made (bytes or rows)."""
        if self.parquet:
            yield from self._parquet_chunks(chunk_size)
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
            done = {int(p.stem.removeprefix("part-")) for p in parts.glob("part-*.csv")}
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
) -> pd.DataFrame:
    """``chunk`` with its unknown labels predicted and the prediction columns added."""
    table = model.predict(data, n_jobs=n_jobs, use_cache=False, features=features)
    out = chunk.copy()
    for col in table.columns.drop(["id", "smiles"], errors="ignore"):
        out[col] = table[col].to_numpy()
    for kind in model.preprocessor_.kinds:
        if kind.categorical:  # classes as integers, an empty cell where unknown
            out[kind.spec.name] = out[kind.spec.name].astype("Int64")
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


def _concatenate(parts: list[Path], output: Path) -> None:
    """Write the parts, in order and with one header, to ``output`` atomically."""

    def write(fh: IO[bytes]) -> None:
        for i, part in enumerate(parts):
            with open(part, "rb") as src:
                if i:
                    src.readline()
                shutil.copyfileobj(src, fh)

    atomic_write(output, write, mode="wb")


def screen(
    model: DualLabelModel,
    input_path: str | Path,
    output: str | Path,
    *,
    model_path: str | Path,
    smiles_column: str | None = None,
    chunk_size: int = 20000,
    workers: int = 1,
) -> Path:
    """Write ``input_path`` (CSV, .csv.gz or Parquet) to ``output`` (CSV) with every unknown
    label predicted.

    Parameters
    ----------
    model
        The trained model, with the inference settings to use.
    model_path
        The file ``model`` was loaded from; its hash keys the resumable parts.
    smiles_column
        The SMILES column (default: the model's, matched ignoring case).
    chunk_size
        Rows read, featurized and written at a time; bounds memory.
    workers
        Processes that featurize molecules; with more than one, the model runs on the cores
        they leave (at least one thread).

    Raises
    ------
    ValueError
        For an output that is the input or the model file (:func:`check_output`) or a
        folder, an output another run is writing (:func:`output_lock`) or that cannot be
        written, and for input that is not UTF-8 CSV or readable Parquet.
    Interrupted
        On Ctrl-C (or a signal a caller turns into it), with the finished parts kept.
    """
    if chunk_size < 1 or workers < 1:
        raise ValueError("--chunk-size and --workers must be at least 1")
    input_path, output = Path(input_path), Path(output)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file {input_path} does not exist")
    check_output(output, input_path, model_path)
    table = _Table(input_path)
    cfg = model.config_
    inputs = model_inputs(model, table.columns(), smiles_column, str(input_path))
    stat = input_path.stat()
    manifest = {
        "input": str(input_path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "chunk_size": chunk_size,
        "model_sha256": _sha256(Path(model_path)),
        "inputs": inputs,
        "molddl_version": __version__,
        "inference": cfg.to_dict()["inference"],
        "device": cfg.device,
    }
    parts_dir = output_paths(output)["parts"]
    with output_lock(output):
        done = _open_parts(parts_dir, manifest)
        parts = _screen_chunks(model, table, parts_dir, done, inputs, chunk_size, workers)
        _concatenate(parts, output)
        shutil.rmtree(parts_dir)
    return output


def _screen_chunks(
    model: DualLabelModel,
    table: _Table,
    parts_dir: Path,
    done: set[int],
    inputs: dict[str, Any],
    chunk_size: int,
    workers: int,
) -> list[Path]:
    """Predict every chunk of ``table`` not ``done`` into its part; returns every part."""
    parts: list[Path] = []
    source = str(table.path)
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
        ahead = _Lookahead(model, workers)
        threads = torch.get_num_threads()
        if ahead.pool is not None:
            # the workers featurize the next chunk on their own cores meanwhile; more model
            # threads than the cores left only fight them (benchmarks/screening.py: 2 cores,
            # 2 workers, 100,000 rows in 41 s instead of 50 s)
            torch.set_num_threads(max(1, threads - workers))
        pending: tuple | None = None  # (part, chunk, data, features) of the chunk in flight

        def finish(part, chunk, data, features) -> None:
            predicted = _predict_chunk(
                model, chunk, data, workers, None if features is None else features.result()
            )
            atomic_write(part, lambda out: predicted.to_csv(out, index=False))

        try:
            end = 0  # rows read so far (a Parquet batch may hold fewer than chunk_size)
            for i, (chunk, progress) in enumerate(chunks):
                part = parts_dir / PART.format(i)
                parts.append(part)
                bar.update(progress - bar.n)
                first_row, end = end, end + len(chunk)
                if i in done:
                    continue
                data = _chunk_dataset(model, chunk, first_row, inputs, source)
                queued = (part, chunk, data, ahead.submit(data))
                if pending is not None:
                    finish(*pending)
                pending = queued
            if pending is not None:
                finish(*pending)
        except KeyboardInterrupt as err:
            note = (
                f"{len(list(parts_dir.glob('part-*.csv')))} finished part(s) kept in "
                f"{parts_dir}; run the same command to resume"
            )
            raise Interrupted(getattr(err, "signum", signal.SIGINT), note) from None
        finally:
            ahead.close()
            torch.set_num_threads(threads)
    return parts
