/* engine/error.h — status codes and error records of the cantor engine.
 *
 * The engine never exits and never prints on its own: every failure becomes a
 * ct_status plus a message, stored in the context (ct_ctx) that owns the tensors,
 * and handed to the context's error handler (see ct_ctx_set_error_handler).
 * Functions that return a tensor return NULL on failure; functions that return
 * ct_status return CT_OK (0) on success.
 */
#ifndef CT_ERROR_H
#define CT_ERROR_H

typedef enum ct_status {
    CT_OK = 0,
    CT_E_SHAPE,       /* shapes do not fit the op */
    CT_E_DTYPE,       /* wrong element type (float32 where int64 is needed, ...) */
    CT_E_DEVICE,      /* operands on different devices, or a device that is not there */
    CT_E_ARG,         /* a bad argument value: a dim out of range, p outside [0,1), ... */
    CT_E_STATE,       /* wrong state: backward through a freed graph, a tensor changed in place, ... */
    CT_E_NOMEM,       /* allocation failed */
    CT_E_IO,          /* the operating system refused a read or write */
    CT_E_FORMAT,      /* a file's content is not what was expected */
    CT_E_UNSUPPORTED, /* valid, but not implemented (yet) */
    CT_E_NULL,        /* a NULL tensor was passed, usually because an earlier op failed */
    CT_STATUS_COUNT
} ct_status;

/* A short constant name for a status ("shape error", ...). Never NULL. */
const char *ct_status_text(ct_status s);

/* Where user code called an op. Every op macro passes CT_SRC, so an error (also one
 * found later during backward) can name the caller's file and line. */
typedef struct ct_src { const char *file; int line; } ct_src;
#define CT_SRC ((ct_src){__FILE__, __LINE__})

#define CT_ERROR_MSG_MAX 1024
typedef struct ct_error {
    ct_status status;
    char msg[CT_ERROR_MSG_MAX];   /* full text, e.g. "matmul: shapes [2, 3] and [4, 5] ... (at train.c:42)" */
} ct_error;

/* Called once for every error the engine records. The default handler writes
 * "cantor: <msg>" to stderr; install your own (or NULL for silence) per context. */
typedef void (*ct_error_handler)(const ct_error *err, void *userdata);

#endif
