/* audio/player.h — plays timed MIDI messages in real time while they are being made.
 *
 * Pure C11; knows nothing of tensors (a composer plugs in as a producer: models/stream.h).
 * Prefix cl_, as audio/live.h, whose errors (cl_status, cl_error) and messages (cl_msg) it uses.
 *
 * THE PARTS
 *   clock     now() and sleep_until() in microseconds: the monotonic clock, or a virtual one
 *             that tests advance by hand (sleeping jumps it forward: no test waits).
 *   sink      where messages go: send(msg, timestamp), now(), close(). A PortMidi output
 *             (cl_output_sink) or a recorder that keeps every message with its timestamp and
 *             the time it was sent (cl_recorder, for tests and dry runs).
 *   producer  a callback that pushes events (time from the piece's start, message) with
 *             cl_player_push and says up to when the piece is now known. The player calls it
 *             whenever less than `ahead` of music is known beyond the playhead, so the music
 *             is made while it plays and stays ahead of it; one call may add little (one
 *             sampled step), the player calls again as needed.
 *   player    a queue of events ordered by (time, push order) and one loop: send what is due,
 *             ask the producer for more, sleep until the next thing to do.
 *
 * TIMING. The piece's time 0 is start_delay after the first `ahead` of music was made. An
 * event at time t gets the timestamp start + t exactly, and goes to the sink `lead` before
 * that (never after it unless the loop fell behind, which stats.late_events counts): a
 * PortMidi output opened with latency L then plays it at start + t + L, whatever the loop's
 * jitter up to L. For a sink that plays messages as they arrive, use lead 0.
 *
 * SILENCE. The player knows which notes it has started. When the piece ends it sends a
 * note-off for every note still sounding, then sustain off and All Notes Off on all 16
 * channels; when it is stopped (the stop flag: a SIGINT handler sets it) or fails (the
 * producer or the sink), it also sends All Sound Off. These messages carry a timestamp no
 * earlier than any message already sent, so they sound after everything queued. Messages
 * of the queue not yet sent are dropped on stop or failure.
 *
 * Ownership. cl_player_new returns a player the caller frees with cl_player_free (NULL is a
 * no-op). The player borrows the sink (the caller closes it: cl_sink_close) and the producer's
 * state. cl_recorder is a caller-owned struct: cl_recorder_init / cl_recorder_free. A PortMidi
 * sink owns its output: closing the sink closes the output. Nothing here prints or exits. */
#ifndef CANTOR_AUDIO_PLAYER_H
#define CANTOR_AUDIO_PLAYER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "audio/live.h"
#include "audio/midi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- clocks ---------------------------------------------------------------------------------- */
typedef struct cl_clock {
    int64_t (*now)(void *self);                   /* microseconds, never decreasing */
    void (*sleep_until)(void *self, int64_t t);   /* returns at t or later, or early on a signal */
    void *self;
} cl_clock;

/* CLOCK_MONOTONIC (cl_now_us), the time base of PortMidi outputs. */
cl_clock cl_clock_monotonic(void);

/* Virtual time for tests: now_us moves only when someone sleeps (to the time asked) or sets
 * it. When a sleep reaches alarm_us (> 0) and alarm is not NULL, *alarm is set to 1, as a
 * SIGINT handler would. */
typedef struct cl_virtual_clock {
    int64_t now_us;
    int64_t sleeps;                  /* sleep_until calls that moved the clock */
    int64_t alarm_us;
    volatile sig_atomic_t *alarm;
} cl_virtual_clock;
cl_clock cl_clock_virtual(cl_virtual_clock *v);

/* ---- sinks ----------------------------------------------------------------------------------- */
typedef struct cl_sink {
    cl_status (*send)(void *self, cl_msg m, int64_t ts_us, cl_error *err);
    int64_t (*now)(void *self);                   /* the time base of ts_us */
    cl_status (*close)(void *self, cl_error *err);
    void *self;
} cl_sink;

/* Calls s->close once (a second call is a no-op) and clears *s. */
cl_status cl_sink_close(cl_sink *s, cl_error *err);

/* A sink on an open PortMidi output; it owns o (closing the sink closes o: silence, drain,
 * Pm_Close). now() is cl_now_us(): run the player on cl_clock_monotonic(). */
cl_sink cl_output_sink(cl_output *o);

/* Every message a recorder's sink was given. */
typedef struct cl_record {
    int64_t ts_us;     /* the timestamp it was sent with */
    int64_t sent_us;   /* the recorder's clock when it was sent */
    cl_msg msg;
} cl_record;

typedef struct cl_recorder {
    cl_clock clock;           /* now() of the sink and each record's sent_us */
    cl_record *records;       /* n of them, in the order sent (owned) */
    int64_t n, cap;
    int closes;               /* calls of the sink's close */
    int64_t fail_at;          /* < 0: never; else the send that would make record fail_at fails
                                 (CL_E_HOST), to test error paths; later sends work again */
} cl_recorder;

void cl_recorder_init(cl_recorder *r, cl_clock clock);
void cl_recorder_free(cl_recorder *r);   /* frees the records; NULL is a no-op */
/* A sink that appends to r (r must outlive it; its close only counts). */
cl_sink cl_recorder_sink(cl_recorder *r);

/* ---- the player ------------------------------------------------------------------------------ */
typedef struct cl_player cl_player;

typedef enum cl_produce {
    CL_PRODUCE_FAIL = -1,  /* err says why; the player stops (silence) and returns CL_E_PRODUCER */
    CL_PRODUCE_MORE = 0,   /* call again when more is needed */
    CL_PRODUCE_DONE = 1    /* the piece is complete; *until_us is its end */
} cl_produce;

/* Pushes events with cl_player_push (times from the piece's start, in microseconds) and sets
 * *until_us (it holds the previous value on entry) to the time before which the piece is now
 * complete: later pushes must not be earlier than it. It must not decrease. */
typedef cl_produce (*cl_producer_fn)(void *user, cl_player *p, int64_t *until_us, cl_error *err);

typedef struct cl_player_opts {
    int64_t ahead_us;        /* produce while less than this is known beyond the playhead (2 s) */
    int64_t lead_us;         /* send each event this long before its timestamp (20 ms) */
    int64_t start_delay_us;  /* time 0 comes this long after the first `ahead` is made (50 ms) */
    int64_t poll_us;         /* the longest sleep: the stop flag is seen within it (10 ms) */
    const volatile sig_atomic_t *stop;   /* nonzero: stop (NULL: never) */
    cl_clock clock;          /* how the player sleeps; its time base must be the sink's now()
                                (the monotonic clock for PortMidi). now == NULL: monotonic */
} cl_player_opts;

/* The values in parentheses above; stop NULL, the monotonic clock. */
cl_player_opts cl_player_defaults(void);

typedef struct cl_player_stats {
    int64_t events_sent;     /* the piece's messages sent (not the silence at the end) */
    int64_t notes_started;   /* note-ons among them */
    int64_t notes_closed;    /* note-offs the player added at the end for notes still sounding */
    int64_t silence_sent;    /* messages sent at the end (note-offs, sustain, all-off) */
    int64_t dropped;         /* queued events not sent (stop or failure) */
    int64_t producer_calls;
    int64_t late_events;     /* sent after their timestamp */
    int64_t max_late_us;
    int64_t underruns;       /* times the playhead caught up with the known piece before its end */
    int64_t min_ahead_us;    /* the least music known beyond the playhead while producing (the
                                whole piece when all of it was made before time 0) */
    int64_t max_queued;      /* the most events waiting at once */
    int64_t start_us;        /* the sink time of the piece's time 0 */
    int64_t end_us;          /* the piece's end (the producer's last until), from its start */
    int64_t finished_us;     /* the sink time when the loop ended */
    bool stopped;            /* ended by the stop flag */
} cl_player_stats;

/* A player sending to sink what producer makes; o may be NULL (defaults). NULL + err when an
 * option is out of range (ahead > 0, lead >= 0, start_delay >= 0, poll > 0), sink.send/now or
 * producer is NULL, or memory is short. */
cl_player *cl_player_new(cl_sink sink, cl_producer_fn producer, void *user, const cl_player_opts *o,
                         cl_error *err);
void cl_player_free(cl_player *p);

/* Queues m at t_us (>= 0) from the piece's start; for producers. CL_E_ARG (an invalid message
 * or time) or CL_E_NOMEM; the first such error also stops the run, which returns it. */
cl_status cl_player_push(cl_player *p, int64_t t_us, cl_msg m);
/* Events waiting in the queue. */
int64_t cl_player_queued(const cl_player *p);

/* Plays until the producer is done and the queue is empty, the stop flag is set, or something
 * fails; silences (see SILENCE) in every case. Returns CL_OK, CL_E_STOPPED, CL_E_PRODUCER (with
 * the producer's message), the sink's error, or a push error. stats may be NULL. Once per
 * player (CL_E_STATE after). */
cl_status cl_player_run(cl_player *p, cl_player_stats *stats, cl_error *err);

/* ---- a MIDI file as a producer --------------------------------------------------------------- */
typedef struct cl_file_source cl_file_source;

/* The channel messages of every track of f, in time order (the tempo map of all tracks;
 * events at one time keep track order, then file order). Meta and sysex events are not sent.
 * A format 2 file's tracks are played together. Release with cl_file_source_free. */
cl_status cl_file_source_new(const cm_file *f, cl_file_source **out, cl_error *err);
void cl_file_source_free(cl_file_source *s);
/* The producer (user = the source): pushes half a second of the file per call. */
cl_produce cl_file_source_produce(void *src, cl_player *p, int64_t *until_us, cl_error *err);
int64_t cl_file_source_events(const cl_file_source *s);
int64_t cl_file_source_notes(const cl_file_source *s);
int64_t cl_file_source_duration_us(const cl_file_source *s);   /* the latest track end */

#ifdef __cplusplus
}
#endif
#endif
