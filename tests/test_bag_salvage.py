"""Bags whose writer was killed: read up to the last complete chunk, and the reader says what is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robo_common import constants as C
from robo_common.bag_salvage import salvage
from robo_eval.bagread import BagError, read_recording
from tests.ros_helpers import REPO_ROOT

# A writer process that flushes three chunks of 10 poses, writes 5 more into its open chunk and is killed.
# With "spill" (sqlite3) the page cache holds one page, so the open transaction's pages reach the file before
# the kill and a hot rollback journal is left beside it (as when a recorder is killed inside a commit).
KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from pathlib import Path
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
    from robo_common import bags
    out, storage = Path(sys.argv[1]), sys.argv[2]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(out, version=9, storage_plugin=plugin)
    if storage == "mcap":
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    writer.open()
    if "spill" in sys.argv[3:]:
        writer.storage.conn.execute("PRAGMA cache_size=1")
    store = bags.typestore()
    conn = writer.add_connection("/robo/ee_target", "geometry_msgs/msg/PoseStamped", typestore=store)
    for i in range(35):
        ns = (i + 1) * 10**9
        msg = bags.pose_stamped(ns, "panda_link0", np.array([0.1 * i, 0, 0.3]), np.array([0, 0, 0, 1.0]))
        writer.write(conn, ns, store.serialize_cdr(msg, "geometry_msgs/msg/PoseStamped"))
        if i % 10 == 9:  # what TopicRecorder.flush does
            if storage == "mcap":
                writer.storage.close_chunk()
                writer.storage.bio.flush()
            else:
                writer.storage.conn.commit()
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _killed_bag(tmp_path: Path, storage: str, *options: str) -> Path:
    out = tmp_path / f"killed_{storage}"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out), storage, *options], cwd=REPO_ROOT,
                          timeout=60, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (out / "metadata.yaml").exists()
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_killed_writer_reads_up_to_its_last_flush(tmp_path: Path, storage: str) -> None:
    bag = _killed_bag(tmp_path, storage)
    found = salvage(bag)
    report = found.report
    assert report.messages == {C.TOPIC_EE_TARGET: 30}  # the 5 in memory were lost
    assert not report.complete and not report.has_metadata
    assert "metadata.yaml" in report.missing[0]
    if storage == "mcap":
        assert report.chunks == 3 and not report.has_index
        assert any("summary and footer" in m for m in report.missing)
        assert report.read_bytes == report.file_bytes
    rec = read_recording(bag, required=[C.TOPIC_EE_TARGET])
    poses = rec.get(C.TOPIC_EE_TARGET)
    assert [round(m.pose.position.x, 6) for _, m in poses] == [round(0.1 * i, 6) for i in range(30)]
    assert rec.salvage is not None and rec.salvage.message_count == 30
    assert rec.start_ns == 10**9 and rec.duration_s == pytest.approx(29.0, abs=1e-6)


def test_a_hot_sqlite_journal_is_rolled_back_on_a_copy(tmp_path: Path) -> None:
    """Killed with its transaction's pages already in the file: a read-only open cannot roll the journal back
    ("attempt to write a readonly database"); the salvage does it on a copy and leaves the bag untouched."""
    bag = _killed_bag(tmp_path, "sqlite3", "spill")
    db = next(bag.glob("*.db3"))
    journal = db.with_name(db.name + "-journal")
    assert journal.is_file() and journal.stat().st_size > 0
    before = {p.name: p.read_bytes() for p in bag.iterdir()}
    report = salvage(bag).report
    assert report.messages == {C.TOPIC_EE_TARGET: 30}  # the committed ones; the open transaction rolled back
    assert any(f"{journal.name} left beside the file; rolled back on a copy" in m for m in report.missing)
    assert not any("does not read" in m for m in report.missing), report.missing
    assert {p.name: p.read_bytes() for p in bag.iterdir()} == before
    rec = read_recording(bag, required=[C.TOPIC_EE_TARGET])
    assert [round(m.pose.position.x, 6) for _, m in rec.get(C.TOPIC_EE_TARGET)] == [round(0.1 * i, 6)
                                                                                      for i in range(30)]


def test_a_cut_chunk_is_dropped_and_named_with_its_offset(tmp_path: Path) -> None:
    bag = _killed_bag(tmp_path, "mcap")
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    third = _chunk_offsets(data)[2]
    mcap.write_bytes(data[:third + 40])  # the third chunk record cut 31 bytes into its body
    report = salvage(bag).report
    assert report.messages == {C.TOPIC_EE_TARGET: 20} and report.chunks == 2
    assert report.read_bytes == third
    assert any(f"record 0x06 at byte {third} cut short" in m for m in report.missing), report.missing
    assert "20 messages" in report.describe() and "missing:" in report.describe()


def test_a_corrupt_chunk_stops_the_read_there(tmp_path: Path) -> None:
    bag = _killed_bag(tmp_path, "mcap")
    mcap = next(bag.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    second = _chunk_offsets(bytes(data))[1]
    # rosbags writes no chunk CRC, so damage must break the zstd frame to be seen: overwrite its magic
    start = second + 9 + 28 + 4 + len("zstd") + 8
    assert bytes(data[start:start + 4]) == b"\x28\xb5\x2f\xfd"
    data[start:start + 4] = b"\0\0\0\0"
    mcap.write_bytes(bytes(data))
    report = salvage(bag).report
    assert report.messages == {C.TOPIC_EE_TARGET: 10}
    assert any(f"the chunk at byte {second} does not decompress" in m for m in report.missing), report.missing


def test_a_closed_bag_is_complete_and_an_empty_directory_is_named(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Writer

    from robo_common import bags

    out = tmp_path / "closed"
    with Writer(out, version=9) as writer:
        store = bags.typestore()
        conn = writer.add_connection(C.TOPIC_INSTRUCTION, "std_msgs/msg/String", typestore=store)
        writer.write(conn, 5, store.serialize_cdr(bags.string("hello"), "std_msgs/msg/String"))
    report = salvage(out).report
    assert report.complete and report.has_index and report.messages == {C.TOPIC_INSTRUCTION: 1}
    (tmp_path / "nothing").mkdir()
    with pytest.raises(BagError, match="no metadata.yaml.*no .mcap or .db3"):
        read_recording(tmp_path / "nothing")


def _chunk_offsets(data: bytes) -> list[int]:
    """Byte offsets of the top-level chunk records of an MCAP file."""
    import struct

    at, found = 8, []
    while at + 9 <= len(data):
        op, size = data[at], struct.unpack_from("<Q", data, at + 1)[0]
        if op == 0x06:
            found.append(at)
        at += 9 + size
    return found
