/*
 * kd-random.c: secrets from the kernel's random source.
 */
#include "common/kd-random.h"

#include <errno.h>
#include <sys/random.h>

static void
kd_random_fill (guint8 *buf, gsize len)
{
  gsize done = 0;

  while (done < len)
    {
      ssize_t n = getrandom (buf + done, len - done, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        g_error ("getrandom() failed: %s", g_strerror (errno));
      done += (gsize) n;
    }
}

char *
kd_random_password (gsize len)
{
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  char *out = g_malloc (len + 1);
  gsize have = 0;

  while (have < len)
    {
      guint8 buf[64];

      kd_random_fill (buf, sizeof buf);
      for (gsize i = 0; i < sizeof buf && have < len; i++)
        {
          /* 248 = 4 * 62: bytes above it would bias the first letters. */
          if (buf[i] < 248)
            out[have++] = alphabet[buf[i] % 62];
        }
    }
  out[len] = '\0';
  return out;
}
