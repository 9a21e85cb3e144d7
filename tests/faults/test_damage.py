"""The damage-restart fault never places damage where a start would take it for a torn tail."""

import os
import random
import struct
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from damage import HEADER, choose, damage, kept, segment_records  # noqa: E402


def record(payload):
    length = struct.pack("<I", len(payload))
    return length + struct.pack("<I", zlib.crc32(length + payload)) + payload


def segment(n_records):
    return b"S" * HEADER + b"".join(record(bytes([1]) + bytes([i]) * (10 + i)) for i in range(n_records))


def test_records_are_parsed():
    data = segment(3)
    assert [e - s for s, e in segment_records(data)] == [19, 20, 21]
    assert segment_records(data[:-1]) == segment_records(data)[:2]


def test_flips_never_touch_the_last_record_of_the_last_segment():
    files = [("log-0000000001.aof", segment(4)), ("log-0000000002.aof", segment(3)),
             ("log-0000000003.aof", b"S" * HEADER)]
    last_start = segment_records(files[1][1])[-1][0]
    for seed in range(300):
        rng = random.Random(seed)
        name, how, offset = choose(files, rng.choice(["flip", "zero-page"]), "log", rng)
        assert not (name == "log-0000000002.aof" and offset >= last_start)


def test_cuts_are_of_a_segment_that_records_follow_or_of_the_snapshot():
    files = [("log-0000000001.aof", segment(4)), ("log-0000000002.aof", segment(3))]
    for seed in range(100):
        name, how, offset = choose(files, "truncate", "log", random.Random(seed))
        assert name == "log-0000000001.aof" and how == "truncate" and offset >= HEADER
    only = [("log-0000000001.aof", segment(4))]
    assert choose(only, "truncate", "log", random.Random(1))[1] == "flip"
    snap = [("snapshot.bin", b"x" * 100)] + only
    assert choose(snap, "truncate", "snapshot", random.Random(1))[0] == "snapshot.bin"
    assert choose(snap, "truncate", "log", random.Random(1))[0] == "snapshot.bin"


def test_a_damaged_directory_is_found_again_in_damaged_dirs():
    with tempfile.TemporaryDirectory() as d:
        for n in (1, 2):
            with open(os.path.join(d, f"log-000000000{n}.aof"), "wb") as f:
                f.write(segment(5))
        what, files = damage(d, "flip", "log", 7)
        assert what and len(files) == 2
        assert kept(d, files) == ["log-0000000001.aof", "log-0000000002.aof"]
        os.mkdir(os.path.join(d, "damaged-1"))
        for name, data in files:
            os.rename(os.path.join(d, name), os.path.join(d, "damaged-1", name))
        assert kept(d, files) == []
