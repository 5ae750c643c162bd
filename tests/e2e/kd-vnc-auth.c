/*
 * kd-vnc-auth: answers a VNC authentication challenge, for the e2e tests'
 * RFB client (Python's standard library has no DES).
 *
 *   kd-vnc-auth PASSWORD CHALLENGE-HEX   ->  RESPONSE-HEX on stdout
 *
 * The same function the gateway uses toward QEMU.
 */
#include "gateway/kd-gateway-priv.h"

#include <stdio.h>
#include <string.h>

int
main (int argc, char **argv)
{
  guint8 challenge[16], response[16];

  if (argc != 3 || strlen (argv[2]) != 32)
    {
      fprintf (stderr, "usage: kd-vnc-auth PASSWORD CHALLENGE-HEX(32 digits)\n");
      return 2;
    }
  for (int i = 0; i < 16; i++)
    {
      int hi = g_ascii_xdigit_value (argv[2][2 * i]), lo = g_ascii_xdigit_value (argv[2][2 * i + 1]);
      if (hi < 0 || lo < 0)
        {
          fprintf (stderr, "kd-vnc-auth: the challenge is not hexadecimal\n");
          return 2;
        }
      challenge[i] = (guint8) (hi << 4 | lo);
    }
  kd_gateway_rfb_vnc_auth_response (argv[1], challenge, response);
  for (int i = 0; i < 16; i++)
    printf ("%02x", response[i]);
  printf ("\n");
  return 0;
}
