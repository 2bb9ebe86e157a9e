#!/usr/bin/python3
"""Writes tests/fixtures/midi/*.mid with mido (Debian's python3-mido) and, beside each,
NAME.txt: what mido reads back from the file, for tests/audio/test_midi.c to compare with.

Run from the repository root:  /usr/bin/python3 tests/gen_midi_fixtures.py
The results are committed; the unit tests never need python.

NAME.txt lines (ticks are absolute):
  header FORMAT NTRACKS DIVISION        DIVISION as the signed 16-bit header field (SMPTE < 0)
  ev TRACK TICK HEX...                  every event but End of Track, in file order; channel
                                        messages as their bytes, meta as ff TYPE PAYLOAD...,
                                        sysex as f0 DATA... f7
  eot TRACK TICK                        End of Track
  tempo TICK US                         the tempo map (formats 0/1; default 500000 at tick 0)
  timesig TICK NUM DEN
  note TRACK CH PITCH VEL PROGRAM START END START_S END_S     notes without the pedal
  snote ...                             notes with the sustain pedal applied
The note rules are written here independently of the C code, over mido's parsed messages:
note-on velocity 0 is a note-off; a note-off closes the earliest open note of its channel and
pitch (FIFO); notes left open close at their track's end; with the pedal, a note-off while CC64
>= 64 is held until the pedal lifts or the same pitch is struck again on that channel.
"""
import collections
import os

import mido

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "midi")


def msg(kind, tick, **kw):
    return (tick, mido.Message(kind, **kw))


def meta(kind, tick, **kw):
    return (tick, mido.MetaMessage(kind, **kw))


def track_from(events, name=None):
    """A mido track from (absolute tick, message) pairs (kept in the given order)."""
    tr = mido.MidiTrack()
    if name is not None:
        tr.append(mido.MetaMessage("track_name", name=name, time=0))
    last = 0
    for tick, m in events:
        assert tick >= last, (tick, last)
        tr.append(m.copy(time=tick - last))
        last = tick
    return tr


# ---- the fixtures -------------------------------------------------------------------------------
def fixtures():
    fx = {}

    # format 0, PPQ 96, several channels, running status (mido always writes it), all channel
    # message kinds, a program change, a tempo and a time signature
    ev = [
        meta("set_tempo", 0, tempo=600000),
        meta("time_signature", 0, numerator=3, denominator=4),
        msg("program_change", 0, channel=0, program=40),
        msg("note_on", 0, channel=0, note=60, velocity=90),
        msg("note_on", 0, channel=0, note=64, velocity=80),
        msg("control_change", 10, channel=0, control=7, value=100),
        msg("pitchwheel", 20, channel=0, pitch=-2000),
        msg("polytouch", 30, channel=0, note=60, value=33),
        msg("aftertouch", 40, channel=0, value=55),
        msg("note_off", 96, channel=0, note=60, velocity=0),
        msg("note_off", 96, channel=0, note=64, velocity=10),
        msg("note_on", 96, channel=1, note=48, velocity=70),
        msg("note_on", 192, channel=1, note=48, velocity=0),
        msg("note_on", 192, channel=0, note=67, velocity=100),
        msg("note_off", 288, channel=0, note=67, velocity=64),
    ]
    f = mido.MidiFile(type=0, ticks_per_beat=96)
    f.tracks.append(track_from(ev, "solo"))
    fx["fmt0_running_status"] = f

    # format 1, PPQ 480: a conductor track with tempo changes, time and key signatures; two
    # instrument tracks
    cond = [
        meta("time_signature", 0, numerator=4, denominator=4),
        meta("key_signature", 0, key="G"),
        meta("set_tempo", 0, tempo=500000),
        meta("set_tempo", 1920, tempo=666667),
        meta("time_signature", 3840, numerator=3, denominator=4),
        meta("set_tempo", 3840, tempo=400000),
        meta("marker", 3840, text="B"),
    ]
    piano = [msg("program_change", 0, channel=0, program=0)]
    for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 74, 76]):
        piano.append(msg("note_on", i * 480, channel=0, note=p, velocity=60 + i))
        piano.append(msg("note_off", i * 480 + 400, channel=0, note=p, velocity=0))
    bass = [msg("program_change", 0, channel=1, program=33)]
    for i, p in enumerate([36, 43, 38, 41]):
        bass.append(msg("note_on", i * 1200, channel=1, note=p, velocity=100))
        bass.append(msg("note_on", i * 1200 + 1100, channel=1, note=p, velocity=0))
    f = mido.MidiFile(type=1, ticks_per_beat=480)
    f.tracks += [track_from(cond, "conductor"), track_from(piano, "piano"), track_from(bass, "bass")]
    fx["fmt1_tempo_changes"] = f

    # SMPTE division: 25 frames per second, 40 ticks per frame (1000 ticks per second)
    ev = [msg("note_on", 0, channel=0, note=60, velocity=100),
          msg("note_off", 500, channel=0, note=60),
          meta("set_tempo", 600, tempo=250000),   # no effect on SMPTE time
          msg("note_on", 1000, channel=0, note=62, velocity=100),
          msg("note_off", 2500, channel=0, note=62)]
    f = mido.MidiFile(type=1, ticks_per_beat=-((25 << 8) - 40))  # bytes E7 28
    f.tracks.append(track_from(ev, "smpte"))
    fx["smpte_25fps"] = f

    # SMPTE 29.97 drop frame, 80 ticks per frame
    ev = [msg("note_on", 0, channel=0, note=60, velocity=100),
          msg("note_off", 2398, channel=0, note=60)]
    f = mido.MidiFile(type=0, ticks_per_beat=-((29 << 8) - 80))  # bytes E3 50
    f.tracks.append(track_from(ev))
    fx["smpte_2997"] = f

    # sysex messages between notes (running status is cut by them when mido writes)
    ev = [msg("sysex", 0, data=[0x7E, 0x7F, 0x09, 0x01]),
          msg("note_on", 0, channel=2, note=50, velocity=70),
          msg("sysex", 100, data=[0x41, 0x10, 0x42, 0x12, 0x40, 0x00, 0x7F, 0x00, 0x41]),
          msg("note_on", 200, channel=2, note=50, velocity=0),
          meta("sequencer_specific", 200, data=[0x00, 0x21, 0x09]),
          meta("text", 210, text="hello")]
    f = mido.MidiFile(type=0, ticks_per_beat=120)
    f.tracks.append(track_from(ev))
    fx["sysex"] = f

    # overlapping notes of one pitch on one channel, note-on velocity 0 as note-off, a stray
    # note-off, a zero-length note, and a note left open (closed at End of Track)
    ev = [msg("note_on", 0, channel=0, note=60, velocity=100),     # A
          msg("note_on", 100, channel=0, note=60, velocity=50),    # B (A still open)
          msg("note_on", 200, channel=0, note=60, velocity=0),     # closes A (FIFO)
          msg("note_off", 300, channel=0, note=60),                # closes B
          msg("note_off", 350, channel=0, note=61),                # stray: ignored
          msg("note_on", 400, channel=0, note=62, velocity=80),
          msg("note_on", 400, channel=0, note=62, velocity=0),     # zero length
          msg("note_on", 500, channel=0, note=64, velocity=90),    # never closed
          msg("note_on", 500, channel=3, note=64, velocity=90),    # other channel, closed
          msg("note_off", 600, channel=3, note=64),
          meta("end_of_track", 960)]
    f = mido.MidiFile(type=1, ticks_per_beat=240)
    f.tracks.append(track_from(ev))
    fx["overlap_vel0"] = f

    # the sustain pedal: notes released under the pedal last until it lifts; a pitch struck
    # again under the pedal ends its sustained note; the other channel is unaffected
    ev = [msg("note_on", 0, channel=0, note=60, velocity=80),
          msg("control_change", 10, channel=0, control=64, value=127),
          msg("note_off", 100, channel=0, note=60),
          msg("note_on", 120, channel=0, note=64, velocity=70),
          msg("note_on", 130, channel=1, note=67, velocity=70),
          msg("note_off", 150, channel=1, note=67),
          msg("note_off", 200, channel=0, note=64),
          msg("note_on", 300, channel=0, note=64, velocity=75),   # re-struck: ends the held 64
          msg("note_off", 350, channel=0, note=64),
          msg("control_change", 480, channel=0, control=64, value=0),
          msg("note_on", 500, channel=0, note=72, velocity=90),
          msg("control_change", 520, channel=0, control=64, value=64),
          msg("note_off", 600, channel=0, note=72),               # held to the track's end
          meta("end_of_track", 960)]
    f = mido.MidiFile(type=1, ticks_per_beat=480)
    f.tracks.append(track_from(ev, "pedal"))
    fx["sustain"] = f

    # drums on channel 10 (index 9) beside a melodic channel
    ev = [msg("program_change", 0, channel=9, program=0)]
    for i in range(8):
        ev.append(msg("note_on", i * 240, channel=9, note=36 if i % 2 == 0 else 38, velocity=100))
        ev.append(msg("note_on", i * 240 + 60, channel=9, note=36 if i % 2 == 0 else 38, velocity=0))
    mel = [msg("note_on", 0, channel=0, note=72, velocity=64), msg("note_off", 960, channel=0, note=72)]
    f = mido.MidiFile(type=1, ticks_per_beat=480)
    f.tracks += [track_from(ev, "drums"), track_from(mel, "lead")]
    fx["drums"] = f

    # format 2: independent tracks, each with its own tempo
    a = [meta("set_tempo", 0, tempo=1000000), msg("note_on", 0, channel=0, note=60, velocity=90),
         msg("note_off", 480, channel=0, note=60)]
    b = [meta("set_tempo", 0, tempo=250000), msg("note_on", 0, channel=0, note=60, velocity=90),
         msg("note_off", 480, channel=0, note=60)]
    f = mido.MidiFile(type=2, ticks_per_beat=480)
    f.tracks += [track_from(a, "slow"), track_from(b, "fast")]
    fx["fmt2"] = f
    return fx


# ---- what mido reads back -------------------------------------------------------------------------
def hexs(bs):
    return " ".join("%02x" % b for b in bs)


def event_bytes(m):
    if m.is_meta:
        b = m.bytes()
        i = 2
        while b[i] & 0x80:  # skip the length (a variable-length quantity)
            i += 1
        return [0xFF, b[1]] + list(b[i + 1:])
    return m.bytes()  # channel messages; sysex as f0 ... f7


def tempo_map(tracks):
    """[(tick, us)] sorted, starting at 0 (default 500000), last one wins at a tick."""
    found = []
    for tr in tracks:
        tick = 0
        for m in tr:
            tick += m.time
            if m.type == "set_tempo":
                found.append((tick, m.tempo))
    found.sort(key=lambda x: x[0])  # stable
    tm = [(0, 500000)]
    for tick, us in found:
        if tm[-1][0] == tick:
            tm[-1] = (tick, us)
        else:
            tm.append((tick, us))
    return tm


def seconds_fn(division, tm):
    if division < 0:
        fps = -(division >> 8)
        tpf = division & 0xFF
        rate = (30000.0 / 1001.0 if fps == 29 else float(fps)) * tpf
        return lambda t: t / rate
    starts = []
    sec = 0.0
    for i, (tick, us) in enumerate(tm):
        if i:
            sec += (tick - tm[i - 1][0]) * tm[i - 1][1] / (1e6 * division)
        starts.append(sec)

    def f(t):
        i = max(k for k in range(len(tm)) if tm[k][0] <= t)
        return starts[i] + (t - tm[i][0]) * tm[i][1] / (1e6 * division)
    return f


def notes_of(track, ti, sustain):
    """Notes of one track: (track, ch, pitch, vel, program, start, end)."""
    open_ = collections.defaultdict(collections.deque)
    held = collections.defaultdict(collections.deque)
    program = [0] * 16
    pedal = [False] * 16
    out = []
    tick = 0
    for m in track:
        tick += m.time
        if m.type == "note_on" and m.velocity > 0:
            key = (m.channel, m.note)
            if sustain:
                while held[key]:
                    held[key].popleft()[6] = tick
            n = [ti, m.channel, m.note, m.velocity, program[m.channel], tick, None]
            out.append(n)
            open_[key].append(n)
        elif m.type in ("note_on", "note_off"):
            key = (m.channel, m.note)
            if open_[key]:
                n = open_[key].popleft()
                if sustain and pedal[m.channel]:
                    held[key].append(n)
                else:
                    n[6] = tick
        elif m.type == "program_change":
            program[m.channel] = m.program
        elif m.type == "control_change" and m.control == 64 and sustain:
            down = m.value >= 64
            if pedal[m.channel] and not down:
                for key in list(held):
                    if key[0] == m.channel:
                        while held[key]:
                            held[key].popleft()[6] = tick
            pedal[m.channel] = down
    for q in list(open_.values()) + list(held.values()):
        for n in q:
            n[6] = max(tick, n[5])
    return out


def describe(path):
    f = mido.MidiFile(path)
    lines = ["header %d %d %d" % (f.type, len(f.tracks), f.ticks_per_beat)]
    for ti, tr in enumerate(f.tracks):
        tick = 0
        for m in tr:
            tick += m.time
            if m.type == "end_of_track":
                lines.append("eot %d %d" % (ti, tick))
            else:
                lines.append("ev %d %d %s" % (ti, tick, hexs(event_bytes(m))))
    groups = [f.tracks] if f.type != 2 else [[t] for t in f.tracks]
    if f.type != 2:
        for tick, us in tempo_map(f.tracks):
            lines.append("tempo %d %d" % (tick, us))
        tick_ts = []
        for tr in f.tracks:
            tick = 0
            for m in tr:
                tick += m.time
                if m.type == "time_signature":
                    tick_ts.append((tick, m.numerator, m.denominator))
        tick_ts.sort(key=lambda x: x[0])
        for t in tick_ts:
            lines.append("timesig %d %d %d" % t)
    for tag, sustain in (("note", False), ("snote", True)):
        notes = []
        for gi, group in enumerate(groups):
            sec = seconds_fn(f.ticks_per_beat, tempo_map(group))
            for ti, tr in enumerate(f.tracks):
                if f.type == 2 and ti != gi:
                    continue
                for n in notes_of(tr, ti, sustain):
                    notes.append(n + [sec(n[5]), sec(n[6])])
        notes.sort(key=lambda n: (n[0], n[1], n[4], n[5], n[2], n[6], n[3]))
        for n in notes:
            lines.append("%s %d %d %d %d %d %d %d %.9f %.9f" % tuple([tag] + n))
    return "\n".join(lines) + "\n"


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, f in sorted(fixtures().items()):
        path = os.path.join(OUT, name + ".mid")
        f.save(path)
        with open(os.path.join(OUT, name + ".txt"), "w") as out:
            out.write(describe(path))
        print("wrote", path)


if __name__ == "__main__":
    main()
