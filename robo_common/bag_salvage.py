"""Read what a recorder that was killed (SIGKILL, power loss) left on disk, and say what is missing.

A rosbag2 recorder that stops normally writes the storage file's index (the MCAP summary and
footer) and then ``metadata.yaml``; one that is killed writes neither, and ``rosbags``' reader
refuses the directory. This module reads such a bag without them:

- **mcap**: the records are scanned from the start; every complete chunk is
  read, and the scan stops at the first record that is cut short or does not decode. What the
  recorder still held in memory (its open chunk) never reached the file and is reported as such.
  (A chunk CRC is checked when the writer set one; rosbags sets none, so only damage that breaks
  the zstd frame or the record structure is seen.)
- **sqlite3**: the committed rows of the ``topics`` and ``messages`` tables are read. A recorder killed
  inside a transaction whose pages already reached the file leaves a hot rollback journal
  (``<file>-journal``); SQLite must roll it back before reading and cannot on a read-only connection, so
  the file and its journal are copied to a temporary directory and rolled back there (the bag itself is
  never written).

:func:`salvage` returns the messages as raw CDR bytes with their topic and type, and a
:class:`SalvageReport` that names, precisely, what the bag lacks. ROS-free.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

MCAP_MAGIC = b"\x89MCAP0\r\n"
OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x02, 0x03, 0x04, 0x05, 0x06


@dataclass(frozen=True)
class SalvagedTopic:
    """A topic found in the storage file: its name, type and message definition (``ros2msg`` text)."""

    topic: str
    msgtype: str
    msgdef: str = ""


@dataclass
class SalvageReport:
    """What a bag's storage file holds and what it lacks.

    Attributes:
        path: The bag directory.
        storage: ``mcap`` or ``sqlite3``.
        file: The storage file read.
        file_bytes: Its size.
        read_bytes: Bytes up to the end of the last record that could be read.
        chunks: Complete MCAP chunks read.
        messages: Messages read per topic.
        start_ns: Earliest log time read (0 without messages).
        end_ns: Latest log time read (0 without messages).
        has_metadata: Whether ``metadata.yaml`` exists.
        has_index: Whether the storage file is finished (MCAP summary and footer; always True for sqlite3).
        missing: One sentence per thing the bag lacks, precise enough to act on.
    """

    path: Path
    storage: str
    file: Path | None = None
    file_bytes: int = 0
    read_bytes: int = 0
    chunks: int = 0
    messages: dict[str, int] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0
    has_metadata: bool = False
    has_index: bool = False
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether the bag was closed properly (nothing is missing)."""
        return not self.missing

    @property
    def message_count(self) -> int:
        """Messages read, all topics."""
        return sum(self.messages.values())

    def describe(self) -> str:
        """One paragraph: what was read and what is missing."""
        topics = ", ".join(f"{t}: {n}" for t, n in sorted(self.messages.items())) or "none"
        head = (f"{self.path}: read {self.message_count} messages ({topics}) from {self.file} "
                f"({self.read_bytes} of {self.file_bytes} bytes"
                + (f", {self.chunks} complete chunks" if self.storage == "mcap" else "") + ")")
        if self.complete:
            return head + "; the bag is complete"
        return head + "; missing: " + "; ".join(self.missing)


@dataclass
class Salvage:
    """The messages read from a bag's storage file, in file order, and the report."""

    topics: dict[int, SalvagedTopic]
    messages: list[tuple[int, int, bytes]]
    """``(topic id, log time ns, raw CDR bytes)``."""
    report: SalvageReport


def storage_file(bag: Path) -> tuple[str, Path]:
    """Return ``(storage, file)`` of a bag directory (its first ``.mcap`` or ``.db3`` file).

    Raises:
        FileNotFoundError: ``bag`` is not a directory or holds no storage file.
    """
    bag = Path(bag)
    if not bag.is_dir():
        raise FileNotFoundError(f"{bag}: no such bag directory")
    for storage, pattern in (("mcap", "*.mcap"), ("sqlite3", "*.db3")):
        files = sorted(bag.glob(pattern))
        if files:
            return storage, files[0]
    raise FileNotFoundError(f"{bag}: no .mcap or .db3 storage file (the recorder never opened the bag?)")


def salvage(bag: str | Path) -> Salvage:
    """Read every message that reached ``bag``'s storage file; the report says what is missing.

    Raises:
        FileNotFoundError: ``bag`` is not a directory or holds no storage file.
    """
    bag = Path(bag)
    storage, path = storage_file(bag)
    report = SalvageReport(path=bag, storage=storage, file=path, file_bytes=path.stat().st_size,
                           has_metadata=(bag / "metadata.yaml").is_file())
    result = _salvage_mcap(path, report) if storage == "mcap" else _salvage_sqlite(path, report)
    if not report.has_metadata:
        report.missing.insert(0, "metadata.yaml (the recorder did not close the bag: killed or crashed)")
    for tid, _, _ in result.messages:
        topic = result.topics[tid].topic
        report.messages[topic] = report.messages.get(topic, 0) + 1
    if result.messages:
        stamps = [ns for _, ns, _ in result.messages]
        report.start_ns, report.end_ns = min(stamps), max(stamps)
    return result


# ---------------------------------------------------------------- mcap
class _Cut(Exception):
    """A record that does not decode; the message says where and why."""


def _u16(buf: memoryview, at: int) -> tuple[int, int]:
    return struct.unpack_from("<H", buf, at)[0], at + 2


def _u32(buf: memoryview, at: int) -> tuple[int, int]:
    return struct.unpack_from("<I", buf, at)[0], at + 4


def _u64(buf: memoryview, at: int) -> tuple[int, int]:
    return struct.unpack_from("<Q", buf, at)[0], at + 8


def _string(buf: memoryview, at: int) -> tuple[str, int]:
    size, at = _u32(buf, at)
    return bytes(buf[at:at + size]).decode(), at + size


def _records(buf: memoryview, start: int, end: int, where: str):  # noqa: ANN202 - a generator of records
    """Yield ``(opcode, body, offset)`` of the records in ``buf[start:end]``; raises :class:`_Cut` at a cut."""
    at = start
    while at < end:
        if at + 9 > end:
            raise _Cut(f"{where}: a record header cut short at byte {at} ({end - at} of 9 bytes)")
        op = buf[at]
        size = struct.unpack_from("<Q", buf, at + 1)[0]
        if at + 9 + size > end:
            raise _Cut(f"{where}: record 0x{op:02x} at byte {at} cut short ({end - at - 9} of {size} bytes)")
        yield op, buf[at + 9:at + 9 + size], at
        at += 9 + size


class _McapScan:
    """State of one scan: schemas, channels (as topics) and messages."""

    def __init__(self) -> None:
        self.schemas: dict[int, tuple[str, str]] = {}
        self.topics: dict[int, SalvagedTopic] = {}
        self.messages: list[tuple[int, int, bytes]] = []

    def inner(self, op: int, body: memoryview) -> None:
        """A record found at the top level or inside a chunk."""
        if op == OP_SCHEMA:
            sid, at = _u16(body, 0)
            name, at = _string(body, at)
            _, at = _string(body, at)  # encoding
            size, at = _u32(body, at)
            self.schemas[sid] = (name, bytes(body[at:at + size]).decode(errors="replace"))
        elif op == OP_CHANNEL:
            cid, at = _u16(body, 0)
            sid, at = _u16(body, at)
            topic, at = _string(body, at)
            name, msgdef = self.schemas.get(sid, ("", ""))
            self.topics[cid] = SalvagedTopic(topic, name, msgdef)
        elif op == OP_MESSAGE:
            cid, at = _u16(body, 0)
            log_ns = struct.unpack_from("<Q", body, 6)[0]
            self.messages.append((cid, log_ns, bytes(body[22:])))

    def chunk(self, body: memoryview, offset: int) -> None:
        """A chunk record: decompress, check the CRC, read its records (all or none of them)."""
        _, at = _u64(body, 0)
        _, at = _u64(body, at)
        size, at = _u64(body, at)
        crc, at = _u32(body, at)
        compression, at = _string(body, at)
        csize, at = _u64(body, at)
        data = bytes(body[at:at + csize])
        if compression == "zstd":
            try:
                from compression import zstd  # type: ignore[import-not-found]
            except ImportError:
                from backports import zstd  # type: ignore[import-not-found,no-redef]
            try:
                data = zstd.decompress(data)
            except Exception as exc:  # noqa: BLE001 - any decoder error is a corrupt chunk
                raise _Cut(f"the chunk at byte {offset} does not decompress ({exc})") from exc
        elif compression:
            raise _Cut(f"the chunk at byte {offset} uses an unsupported compression {compression!r}")
        if len(data) != size or (crc and zlib.crc32(data) != crc):
            raise _Cut(f"the chunk at byte {offset} fails its size or CRC check")
        before = (dict(self.schemas), dict(self.topics), len(self.messages))
        try:
            view = memoryview(data)
            for op, inner, _ in _records(view, 0, len(data), f"the chunk at byte {offset}"):
                self.inner(op, inner)
        except (_Cut, struct.error, UnicodeDecodeError) as exc:
            self.schemas, self.topics = before[0], before[1]
            del self.messages[before[2]:]
            raise _Cut(str(exc)) from exc


def _salvage_mcap(path: Path, report: SalvageReport) -> Salvage:
    buf = memoryview(path.read_bytes())
    scan = _McapScan()
    if len(buf) < 8 or bytes(buf[:8]) != MCAP_MAGIC:
        report.missing.append(f"the MCAP file starts with no MCAP magic ({len(buf)} bytes): nothing readable")
        return Salvage({}, [], report)
    at, footer = 8, False
    try:
        for op, body, offset in _records(buf, 8, len(buf), f"{path.name}"):
            if op == OP_CHUNK:
                scan.chunk(body, offset)
                report.chunks += 1
            elif op in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE):
                scan.inner(op, body)
            elif op == OP_FOOTER:
                footer = True
            at = offset + 9 + len(body)
            if footer:
                break
    except _Cut as exc:
        report.missing.append(f"{exc}; {len(buf) - at} bytes after byte {at} are unreadable")
    except (struct.error, UnicodeDecodeError) as exc:
        report.missing.append(f"a record after byte {at} does not decode ({exc}); "
                              f"{len(buf) - at} bytes are unreadable")
    if footer and bytes(buf[-8:]) == MCAP_MAGIC:
        report.has_index = True
        at = len(buf)
    else:
        report.missing.append(
            "the MCAP summary and footer (the file ends after the last chunk written; messages the recorder "
            "still held in its open chunk when it stopped were never written)")
    report.read_bytes = at
    return Salvage(scan.topics, scan.messages, report)


# ---------------------------------------------------------------- sqlite3
SQLITE_SIDECARS = ("-journal", "-wal", "-shm")
"""Files SQLite keeps beside a database while it writes: a rollback journal, or a write-ahead log and its index."""


def _read_sqlite(db_path: Path, uri_mode: str) -> tuple[dict[int, SalvagedTopic], list[tuple[int, int, bytes]]]:
    """Topics and messages (committed rows) of a rosbag2 sqlite3 file opened with ``mode=uri_mode``."""
    topics: dict[int, SalvagedTopic] = {}
    messages: list[tuple[int, int, bytes]] = []
    db = sqlite3.connect(f"file:{db_path}?mode={uri_mode}", uri=True)
    try:
        defs: dict[str, str] = {}
        try:
            defs = {t: d for t, d in db.execute("SELECT topic_type, encoded_message_definition "
                                                "FROM message_definitions")}
        except sqlite3.Error:
            pass  # bags before version 8 have no definitions table
        for tid, name, msgtype in db.execute("SELECT id, name, type FROM topics"):
            topics[int(tid)] = SalvagedTopic(name, msgtype, defs.get(msgtype, ""))
        for tid, ns, data in db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            messages.append((int(tid), int(ns), bytes(data)))
    finally:
        db.close()
    return topics, messages


def _salvage_sqlite(path: Path, report: SalvageReport) -> Salvage:
    report.has_index = True
    sidecars = [path.with_name(path.name + suffix) for suffix in SQLITE_SIDECARS]
    sidecars = [p for p in sidecars if p.is_file() and p.stat().st_size > 0]
    try:
        if not sidecars:
            topics, messages = _read_sqlite(path, "ro")
        else:  # roll the journal back (or the log forward) on a copy: the bag is left as the recorder left it
            with tempfile.TemporaryDirectory(prefix="robo_salvage_") as tmp:
                copy = Path(tmp) / path.name
                for src in (path, *sidecars):
                    shutil.copyfile(src, Path(tmp) / src.name)
                topics, messages = _read_sqlite(copy, "rw")
            names = ", ".join(p.name for p in sidecars)
            report.missing.append(f"the transaction open when the recorder stopped ({names} left beside the file; "
                                  "rolled back on a copy)")
    except (sqlite3.Error, OSError) as exc:
        report.missing.append(f"the sqlite3 file does not read ({exc}); no committed messages recovered")
        return Salvage({}, [], report)
    report.read_bytes = report.file_bytes
    if not (report.path / "metadata.yaml").is_file():
        report.missing.append("messages written after the recorder's last commit (SQLite rolled them back)")
    return Salvage(topics, messages, report)
