/*
 * kd-open-graphics: opens a domain's display socket through src/hv
 * (virDomainOpenGraphicsFD) and runs a program with it inherited, as
 * kvmdeskd does when it starts kvmdesk-display with --dbus-fd.
 *
 *   kd-open-graphics URI DOMAIN PROGRAM [ARGS...]
 *
 * Every ARG equal to "{fd}" is replaced by the descriptor's number.
 */
#include "hv/kd-hv.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdHvHost) host = NULL;
  g_autofree char *fd_text = NULL;
  int fd, i;

  if (argc < 4)
    {
      fprintf (stderr, "usage: kd-open-graphics URI DOMAIN PROGRAM [ARGS...]\n");
      return 2;
    }
  kd_hv_init ();
  host = kd_hv_host_new ("graphics", argv[1], NULL);
  if (!kd_hv_host_connect (host, &error)
      || (fd = kd_hv_domain_open_graphics (host, argv[2], &error)) < 0)
    {
      fprintf (stderr, "kd-open-graphics: %s\n", error->message);
      return 1;
    }
  kd_hv_host_disconnect (host);
  /* Inherited by the program: no CLOEXEC, blocking as a fresh socket is. */
  fcntl (fd, F_SETFD, 0);
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);
  fd_text = g_strdup_printf ("%d", fd);
  for (i = 4; i < argc; i++)
    if (strcmp (argv[i], "{fd}") == 0)
      argv[i] = fd_text;
  execv (argv[3], argv + 3);
  perror ("kd-open-graphics: exec");
  return 1;
}
