/*
 * kd-error.c: the shared error quark.
 */
#include "kd-error.h"

G_DEFINE_QUARK (kvmdesk-error-quark, kd_error)
