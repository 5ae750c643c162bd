/*
 * kd-random.h: secrets from the kernel's random source (getrandom(2)).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* @len characters from [A-Za-z0-9], uniformly (rejection sampling);
 * about 5.95 bits each. Aborts only if the kernel cannot give randomness
 * at all, which no caller could recover from. */
char *kd_random_password (gsize len);

G_END_DECLS
