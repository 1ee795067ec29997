"""A simulated Virgo strain stream: 1-second chunks of h(t) at 4096 Hz, one HDF5 file each.

Each file (``V-V1_O3_STRAIN-<gps>-1.h5``, the detector-frame naming Virgo's files follow) holds
one float64 dataset ``strain`` of ``sample_rate * duration`` samples: Gaussian noise at the
level of a detector's strain (1e-21) with a 50 Hz mains line, reproducible from ``seed`` and
the GPS time. Its attributes say where it belongs: ``gps_start`` (GPS seconds), ``sample_rate``
(Hz), ``duration`` (s), ``channel``, ``detector``. Needs the ``stream`` extra (h5py, numpy).
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lacus.client.stream.chunks import Chunk
from lacus.errors import LacusError

GPS_EPOCH_UNIX = 315_964_800
"""Unix time of GPS time 0 (1980-01-06T00:00:00Z)."""

LEAP_SECONDS = 18
"""GPS minus UTC since 2017-01-01 (no leap second has been announced since)."""

SAMPLE_RATE = 4096
CHANNEL = "V1:STRAIN_SIM_4096Hz"
STRAIN_LEVEL = 1e-21


class MissingExtra(LacusError):
    """An optional dependency is not installed."""


def _libraries() -> tuple[Any, Any]:
    try:
        import h5py  # type: ignore[import-untyped]
        import numpy
    except ImportError:
        raise MissingExtra(
            "the simulated Virgo source needs h5py and numpy: pip install 'lacus[stream]'"
        ) from None
    return h5py, numpy


def gps_now() -> int:
    """The current GPS second."""
    return int(time.time()) - GPS_EPOCH_UNIX + LEAP_SECONDS


def unix_of_gps(gps: float) -> float:
    return gps + GPS_EPOCH_UNIX - LEAP_SECONDS


def chunk_name(gps: int, duration: int = 1) -> str:
    return f"V-V1_O3_STRAIN-{gps}-{duration}.h5"


def virgo_chunks(
    *,
    start_gps: int | None = None,
    count: int | None = None,
    sample_rate: int = SAMPLE_RATE,
    duration: int = 1,
    seed: int = 0,
) -> Iterator[Chunk]:
    """``count`` consecutive chunks (None: forever) from ``start_gps`` (default: now), each made
    when it is taken: its ``created`` is the moment its file is complete, its ``time`` the unix
    time of its first sample (which decides its hour dataset). The libraries are loaded by the
    call, not by the first chunk: a paced source's first chunk is not late."""
    h5py, numpy = _libraries()
    return _chunks(h5py, numpy, start_gps, count, sample_rate, duration, seed)


def _chunks(
    h5py: Any,
    numpy: Any,
    start_gps: int | None,
    count: int | None,
    sample_rate: int,
    duration: int,
    seed: int,
) -> Iterator[Chunk]:
    gps = gps_now() if start_gps is None else start_gps
    samples = sample_rate * duration
    # 50 Hz has a whole number of periods in a whole second: the same phase in every chunk.
    mains = (
        0.3 * STRAIN_LEVEL * numpy.sin(2 * numpy.pi * 50.0 * numpy.arange(samples) / sample_rate)
    )
    for index in itertools.count() if count is None else range(count):
        start = gps + index * duration
        rng = numpy.random.default_rng([seed, start])
        strain = rng.normal(0.0, STRAIN_LEVEL, samples) + mains
        data = _hdf5(h5py, strain, gps_start=start, sample_rate=sample_rate, duration=duration)
        yield Chunk(
            name=chunk_name(start, duration),
            data=data,
            created=time.time(),
            time=unix_of_gps(start),
            meta={"gps_start": start, "sample_rate": sample_rate},
        )


def _hdf5(h5py: Any, strain: Any, *, gps_start: int, sample_rate: int, duration: int) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as out:
        dataset = out.create_dataset("strain", data=strain)
        dataset.attrs["gps_start"] = gps_start
        dataset.attrs["sample_rate"] = sample_rate
        dataset.attrs["duration"] = duration
        dataset.attrs["channel"] = CHANNEL
        dataset.attrs["detector"] = "V1"
        out.attrs["gps_start"] = gps_start
        out.attrs["sample_rate"] = sample_rate
    return buffer.getvalue()


def read_chunk(source: Path | bytes) -> tuple[int, int, Any]:
    """``(gps_start, sample_rate, strain)`` of a chunk file (a path or its bytes)."""
    h5py, _ = _libraries()
    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    with h5py.File(handle, "r") as chunk:
        dataset = chunk["strain"]
        return int(dataset.attrs["gps_start"]), int(dataset.attrs["sample_rate"]), dataset[()]
