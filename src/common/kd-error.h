/*
 * kd-error.h: the error domain shared by kvmdesk's layers for failures that
 * are not specific to one module (bad input, missing object, conflicts).
 *
 * Every module keeps its own domain as well (KD_HV_ERROR, KD_STORE_ERROR);
 * src/api maps all of them to HTTP in one function.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define KD_ERROR (kd_error_quark ())
GQuark kd_error_quark (void);

typedef enum {
  KD_ERROR_FAILED,        /* something broke on our side: 500 */
  KD_ERROR_INVALID,       /* the request is malformed or out of range: 400 */
  KD_ERROR_NOT_FOUND,     /* no such object: 404 */
  KD_ERROR_EXISTS,        /* an object with that name exists: 409 */
  KD_ERROR_BUSY,          /* the object is in use or in the wrong state: 409 */
  KD_ERROR_TOO_LARGE,     /* a body or upload over its limit: 413 */
  KD_ERROR_UNAUTHORIZED,  /* no or bad credentials: 401 */
  KD_ERROR_FORBIDDEN,     /* authenticated, not allowed: 403 */
  KD_ERROR_RATE_LIMITED,  /* too many attempts: 429 */
  KD_ERROR_UNAVAILABLE,   /* a host is down or unreachable: 503 */
} KdError;

G_END_DECLS
