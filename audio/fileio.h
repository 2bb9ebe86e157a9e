/* audio/fileio.h — writing a file whole and atomically, the way every writer of audio/ does:
 * a temporary file beside the target ("<path>.tmp-PID-K"), fsync, rename over the target, fsync
 * of its folder. On any failure the temporary file is removed and an existing file at path is
 * untouched; the message names path and the temporary file, and says so when the disk is full.
 * Implemented in audio/fileio.c, beside the private helpers midi.h declares. */
#ifndef CANTOR_AUDIO_FILEIO_H
#define CANTOR_AUDIO_FILEIO_H

#include <stddef.h>

#include "audio/midi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes n bytes of data to path atomically. CM_OK, or CM_E_IO / CM_E_NOMEM with err filled
 * (err may be NULL); path NULL (or data NULL with n > 0) is CM_E_ARG. */
cm_status cm_write_file_atomic(const char *path, const void *data, size_t n, cm_error *err);

#ifdef __cplusplus
}
#endif
#endif
