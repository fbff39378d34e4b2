"""``molddl predict``: fill in every unknown label of a compound table (the screening job).

A large file is read in chunks; each finished chunk is written to ``<output>.parts/`` so that
an interrupted run, started again with the same arguments, skips the finished chunks. A
``manifest.json`` there records what the parts were computed from (input file, its size and
modification time, chunk size, model file hash); parts of another run are never reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from molddl._version import __version__
from molddl.cli.evaluate import model_inputs
from molddl.cli.options import add_runtime_options, apply_runtime_overrides, config_path_beside
from molddl.data.dataset import DualLabelDataset
from molddl.data.featurize import compute_features
from molddl.data.loaders import dataset_from_frame
from molddl.io import atomic_write, atomic_write_text
from molddl.models.estimator import DualLabelModel

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PART = "part-{:06d}.csv"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict every unknown label of a compound table (screening)",
        description=(
            "Read a CSV of compounds (SMILES, optionally an id and the label columns with the "
            "values you know; an empty cell or an absent label column is unknown) and write "
            "it back with every unknown label predicted: from the other label where that one "
            "is known (direct inference), else from both jointly (alternate inference). Known "
            "labels are kept. Added columns: <label>_prob (binary labels), <label>_source "
            "(given / direct / alternate), iterations, converged and error (an invalid SMILES "
            "keeps its row, with an error and no prediction). Finished chunks are kept in "
            "OUTPUT.parts/ until the end, so the same command resumes an interrupted run."
        ),
    )
    p.add_argument("--model", required=True, help="model file written by 'molddl train'")
    p.add_argument("--input", required=True, help="CSV (or .csv.gz) of compounds to predict")
    p.add_argument("--output", required=True, help="CSV to write (replaced atomically at the end)")
    p.add_argument(
        "--smiles-column",
        help="SMILES column (default: the one the model was trained with, matched ignoring case)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=20000,
        help="rows read, featurized and written at a time; bounds memory (default 20000)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that featurize molecules (default: the number of CPU cores); with "
        "more than one, the model runs on the cores they leave (at least one thread)",
    )
    add_runtime_options(p)
    p.set_defaults(run=run)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_csv(source: str | IO[bytes], **kwargs) -> pd.DataFrame:
    """Cells as text (passed through unchanged); only an empty cell is missing."""
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""], **kwargs)


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
    for spec in model.preprocessor_.labels:
        if spec.is_class:
            out[spec.name] = out[spec.name].astype("Int64")
    return out


class _Lookahead:
    """Featurizes the next chunk in the worker processes, from a background thread, while the
    model predicts the current one in this process (the two took about equal time)."""

    def __init__(self, model: DualLabelModel, workers: int) -> None:
        self.featurizer = model.preprocessor_.make_featurizer()
        self.workers = workers
        on = self.featurizer is not None and workers > 1
        self.pool = ProcessPoolExecutor(max_workers=workers) if on else None
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


def run(args: argparse.Namespace) -> int:
    if args.chunk_size < 1 or args.workers < 1:
        raise ValueError("--chunk-size and --workers must be at least 1")
    input_path, output = Path(args.input), Path(args.output)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file {input_path} does not exist")
    compression = "gzip" if input_path.suffix == ".gz" else None
    try:
        head = _read_csv(input_path, nrows=1, compression=compression)
    except pd.errors.EmptyDataError:
        raise ValueError(f"input file {input_path} is empty (no header, no rows)") from None
    if head.empty:
        raise ValueError(f"input file {input_path} has a header but no data rows")
    model = DualLabelModel.load(args.model)
    cfg = apply_runtime_overrides(model, args.overrides)
    inputs = model_inputs(model, list(head.columns), args.smiles_column, str(input_path))
    stat = input_path.stat()
    manifest = {
        "input": str(input_path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "chunk_size": args.chunk_size,
        "model_sha256": _sha256(Path(args.model)),
        "inputs": inputs,
        "molddl_version": __version__,
        "inference": cfg.to_dict()["inference"],
        "device": cfg.device,
    }
    parts_dir = output.with_name(output.name + ".parts")
    done = _open_parts(parts_dir, manifest)
    parts: list[Path] = []
    with (
        open(input_path, "rb") as fh,
        tqdm(
            total=stat.st_size,
            unit="B",
            unit_scale=True,
            desc="predict",
            file=sys.stderr,
            disable=None,  # no bar when stderr is not a terminal
        ) as bar,
        logging_redirect_tqdm(),
    ):
        reader = _read_csv(fh, chunksize=args.chunk_size, compression=compression)
        ahead = _Lookahead(model, args.workers)
        threads = torch.get_num_threads()
        if ahead.pool is not None:
            # the workers featurize the next chunk on their own cores meanwhile; more model
            # threads than the cores left only fight them (benchmarks/screening.py: 2 cores,
            # 2 workers, 100,000 rows in 41 s instead of 50 s)
            torch.set_num_threads(max(1, threads - args.workers))
        pending: tuple | None = None  # (part, chunk, data, features) of the chunk in flight

        def finish(part, chunk, data, features) -> None:
            table = _predict_chunk(
                model, chunk, data, args.workers, None if features is None else features.result()
            )
            atomic_write(part, lambda out: table.to_csv(out, index=False))

        try:
            for i, chunk in enumerate(reader):
                part = parts_dir / PART.format(i)
                parts.append(part)
                bar.update(fh.tell() - bar.n)  # bytes read so far
                if i in done:
                    continue
                data = _chunk_dataset(model, chunk, i * args.chunk_size, inputs, str(input_path))
                queued = (part, chunk, data, ahead.submit(data))
                if pending is not None:
                    finish(*pending)
                pending = queued
            if pending is not None:
                finish(*pending)
        except KeyboardInterrupt:
            logger.warning(
                "interrupted: %d finished part(s) kept in %s; run the same command to resume",
                len(list(parts_dir.glob("part-*.csv"))),
                parts_dir,
            )
            raise
        finally:
            ahead.close()
            torch.set_num_threads(threads)
    _concatenate(parts, output)
    atomic_write_text(config_path_beside(output), cfg.to_yaml())
    shutil.rmtree(parts_dir)
    sys.stdout.write(f"predictions for {input_path} written to {output}\n")
    return 0
