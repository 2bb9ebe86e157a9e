/* tests/fuzz/fuzz_midi.c — libFuzzer target for the MIDI reader, tempo map, note extraction,
 * writer and note builder. Build and run with tests/fuzz/run_fuzz.sh SECONDS:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_midi.c audio/ALL.c
 * Every crash it finds becomes a file under tests/fixtures/midi/regress/ (the unit tests run
 * this same body over each). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_midi_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cm_fuzz_one(data, size);
    return 0;
}
