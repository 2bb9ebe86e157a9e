#!/usr/bin/python3
"""Writes the fuzzer's seed corpus, tests/fuzz/corpus_midi/: tiny MIDI files built byte by byte
here (valid ones of each kind and broken ones near each check). Standard library only.
Run from the repository root:  /usr/bin/python3 tests/fuzz/make_corpus.py  (results committed)."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_midi")


def vlq(v):
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))


def chunk(cid, data):
    return cid + struct.pack(">I", len(data)) + data


def header(fmt, ntracks, division):
    return chunk(b"MThd", struct.pack(">HHH", fmt, ntracks, division))


def track(events, eot=True):
    """events: (delta, bytes) pairs."""
    data = b"".join(vlq(d) + b for d, b in events)
    if eot:
        data += b"\x00\xff\x2f\x00"
    return chunk(b"MTrk", data)


def name(s):
    return b"\xff\x03" + vlq(len(s)) + s


SEEDS = {
    "fmt0_notes": header(0, 1, 96) + track([(0, name(b"x")), (0, b"\x90\x3c\x40"), (96, b"\x3c\x00"),
                                            (0, b"\x3e\x40"), (48, b"\x80\x3e\x40")]),
    "fmt1_tempo": header(1, 2, 480)
    + track([(0, b"\xff\x58\x04\x03\x02\x18\x08"), (0, b"\xff\x51\x03\x07\xa1\x20"),
             (0, b"\xff\x59\x02\xfe\x01"), (960, b"\xff\x51\x03\x0f\x42\x40")])
    + track([(0, b"\xc0\x05"), (0, b"\x90\x40\x50"), (480, b"\x40\x00"), (0, b"\xb0\x40\x7f"),
             (0, b"\x90\x43\x50"), (10, b"\x80\x43\x00"), (100, b"\xb0\x40\x00"),
             (0, b"\xe0\x00\x40"), (0, b"\xa0\x43\x10"), (0, b"\xd0\x20")]),
    "fmt2": header(2, 2, 96) + track([(0, b"\xff\x51\x03\x0f\x42\x40"), (0, b"\x90\x30\x30")])
    + track([(5, b"\x99\x24\x7f"), (5, b"\x89\x24\x00")]),
    "smpte": header(1, 1, 0xE728) + track([(0, b"\x90\x3c\x40"), (1000, b"\x80\x3c\x40")]),
    "sysex": header(0, 1, 120) + track([(0, b"\xf0\x05\x7e\x7f\x09\x01\xf7"), (0, b"\x92\x32\x46"),
                                        (10, b"\xf7\x02\xf3\x01"), (10, b"\x32\x00"),
                                        (0, b"\xff\x7f\x03\x00\x21\x09")]),
    "no_eot": header(1, 1, 96) + track([(0, b"\x90\x3c\x40"), (10, b"\x3e\x40")], eot=False),
    "riff": (lambda smf: b"RIFF" + struct.pack("<I", 4 + 8 + len(smf)) + b"RMID" + b"data"
             + struct.pack("<I", len(smf)) + smf)(header(0, 1, 96) + track([(0, b"\x90\x3c\x40")])),
    "junk_chunk": header(1, 1, 96) + chunk(b"XFIH", b"\x01\x02") + track([(0, b"\x90\x3c\x40")]) + b"\x00",
    "big_delta": header(1, 1, 96) + track([(0x0FFFFFFF, b"\x90\x3c\x40"), (0x0FFFFFFF, b"\x3c\x00"),
                                           (0x0FFFFFFF, b"\x3c\x40"), (0x0FFFFFFF, b"\x3c\x00")]),
    # broken
    "bad_running_status": header(1, 1, 96) + track([(0, b"\x3c\x40")]),
    "bad_vlq": header(1, 1, 96) + chunk(b"MTrk", b"\xff\xff\xff\xff\x7f\x90\x3c\x40"),
    "bad_truncated": (header(1, 1, 96) + track([(0, b"\x90\x3c\x40"), (5, b"\x80\x3c\x40")]))[:-5],
    "bad_header": chunk(b"MThd", struct.pack(">HH", 1, 1)),
    "bad_meta_len": header(1, 1, 96) + chunk(b"MTrk", b"\x00\xff\x01\x8f\xff\xff\x7f"),
    "bad_tracks": header(1, 3, 96) + track([(0, b"\x90\x3c\x40")]),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for n, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, n + ".mid"), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), OUT))


if __name__ == "__main__":
    main()
