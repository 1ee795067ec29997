"""Real-time ingestion and consumption of chunk streams (docs/streaming.md).

``Ingestor`` writes chunks to an RSE and registers them in an open dataset as they come;
``Consumer`` follows a dataset through the event stream and downloads each new file, verified.
Sources: any iterable of ``Chunk``, ``directory_chunks`` (a directory being filled),
``framed_chunks`` (a length-prefixed byte stream), ``virgo_chunks`` (simulated Virgo strain,
needs the ``stream`` extra).
"""

from lacus.client.stream.chunks import Chunk, directory_chunks, frame, framed_chunks, paced
from lacus.client.stream.consume import Consumed, Consumer, ConsumeReport, read_report
from lacus.client.stream.ingest import (
    ChunkResult,
    ChunkStatus,
    DatasetPer,
    Ingestor,
    IngestReport,
    RuleSpec,
)
from lacus.client.stream.latency import summarize
from lacus.client.stream.virgo import read_chunk, virgo_chunks

__all__ = [
    "Chunk",
    "ChunkResult",
    "ChunkStatus",
    "ConsumeReport",
    "Consumed",
    "Consumer",
    "DatasetPer",
    "IngestReport",
    "Ingestor",
    "RuleSpec",
    "directory_chunks",
    "frame",
    "framed_chunks",
    "paced",
    "read_chunk",
    "read_report",
    "summarize",
    "virgo_chunks",
]
