"""Damage to a durable replica's data directory while it is down (the `damage-restart` fault).

The replica is restarted with --recover-from-peers: it must find the damage, move its files into
DIR/damaged-<time>/ unchanged, and rebuild from its peers as a new member. The damage is placed
where no start could take it for a torn tail (a crash in the middle of a write, which a start
accepts): a flipped bit or a zeroed 4 KiB page in a record that readable records follow, or in
the snapshot; a cut only of the snapshot or of a segment that a segment with records follows.
The harness makes the replica write a snapshot (SAVE) first when the damage is meant for it or
is a cut, so that a short run has one.
"""

import os
import random
import struct

HEADER = 32  # a log segment's header (docs/durability.md, "On-disk format")


def segment_records(data):
    """(start, end) of the whole records of a segment's bytes."""
    out = []
    at = HEADER
    while at + 8 < len(data):
        (length,) = struct.unpack_from("<I", data, at)
        end = at + 8 + length
        if end > len(data):
            break
        out.append((at, end))
        at = end
    return out


def history(data_dir):
    """The files a start reads: [(name, bytes)], the snapshot first, then segments in order."""
    names = sorted(n for n in os.listdir(data_dir)
                   if n == "snapshot.bin" or (n.startswith("log-") and n.endswith(".aof")))
    names.sort(key=lambda n: (n != "snapshot.bin", n))
    out = []
    for n in names:
        with open(os.path.join(data_dir, n), "rb") as f:
            out.append((n, f.read()))
    return out


def choose(files, how, target, rng):
    """Where to damage: (name, kind, offset) or None if the directory offers no such place.
    `how` is flip, zero-page or truncate; `target` log or snapshot (the log if no snapshot)."""
    segments = [(n, b, segment_records(b)) for n, b in files if n.endswith(".aof")]
    with_records = [i for i, (_, _, r) in enumerate(segments) if r]
    snapshot = next((b for n, b in files if n == "snapshot.bin"), None)
    if target == "snapshot" and snapshot:
        offset = rng.randrange(len(snapshot))
        return "snapshot.bin", how, offset
    if not with_records:
        return ("snapshot.bin", how, rng.randrange(len(snapshot))) if snapshot else None
    last = with_records[-1]
    if how == "truncate":
        # A cut of a segment that a segment with records follows (a hole), else of the
        # snapshot, else a flip.
        earlier = [i for i in with_records if i != last]
        if earlier:
            name, data, records = segments[rng.choice(earlier)]
            return name, how, rng.randrange(records[0][0], len(data))
        if snapshot:
            return "snapshot.bin", how, rng.randrange(len(snapshot))
        how = "flip"
    # A record that readable records follow: not the last record of the last segment.
    places = [(i, r) for i in with_records for r in segments[i][2]
              if not (i == last and r == segments[i][2][-1])]
    if not places:
        return None
    i, (start, end) = rng.choice(places)
    return segments[i][0], how, rng.randrange(start, end)


def apply(data_dir, name, how, offset, rng):
    """Damages the file; returns a description."""
    path = os.path.join(data_dir, name)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    size = len(data)
    if how == "flip":
        bit = rng.randrange(8)
        data[offset] ^= 1 << bit
        what = f"bit {bit} of byte {offset} flipped"
    elif how == "zero-page":
        page = offset - offset % 4096
        end = min(page + 4096, size)
        data[page:end] = bytes(end - page)
        what = f"bytes {page}..{end} zeroed"
    else:
        del data[offset:]
        what = f"cut at byte {offset}"
    with open(path, "wb") as f:
        f.write(data)
    return f"{name} ({size} bytes): {what}"


def damage(data_dir, how, target, seed):
    """Damages the directory of a stopped replica; returns (description or None, the history's
    files as left, to find again in damaged-*/)."""
    rng = random.Random(seed)
    where = choose(history(data_dir), how, target, rng)
    if where is None:
        return None, []
    name, kind, offset = where
    what = apply(data_dir, name, kind, offset, rng)
    return what, history(data_dir)


def kept(data_dir, files):
    """The files of `files` that are not, byte for byte, in a damaged-* directory."""
    missing = []
    asides = [os.path.join(data_dir, d) for d in os.listdir(data_dir) if d.startswith("damaged-")]
    for name, data in files:
        found = False
        for d in asides:
            p = os.path.join(d, name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    found = found or f.read() == data
        if not found:
            missing.append(name)
    return missing
