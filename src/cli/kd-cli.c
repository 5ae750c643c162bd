/*
 * kd-cli.c: main() of `kvmdesk`, the command-line client of kvmdeskd.
 *
 * It parses the command line, finds the URL and token to use, runs the
 * command and turns a failure into one sentence on stderr ("kvmdesk: …")
 * with exit status 1, or 2 with the command's usage for a wrong command
 * line. It talks to the REST API only (docs/api.md).
 */
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kd-cli-commands.h"
#include "kd-cli-format.h"

static void
print_error (const GError *error)
{
  g_autofree char *message = kd_cli_sanitize (error->message);

  fprintf (stderr, "kvmdesk: %s\n", message);
}

int
main (int argc, char **argv)
{
  g_autoptr(KdCliInvocation) inv = kd_cli_invocation_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(KdCliCredentials) stored = NULL;
  g_autoptr(KdCliHttp) http = NULL;
  g_autofree char *credentials_path = NULL;
  g_autofree char *url = NULL;
  KdCli cli = { 0 };
  gboolean parsed;

  setlocale (LC_ALL, "");

  parsed = kd_cli_parse (kd_cli_commands, kd_cli_n_commands, argc, argv, inv, &error);
  if (inv->help)
    {
      kd_cli_print_help (stdout, kd_cli_commands, kd_cli_n_commands, inv->group, inv->command);
      return KD_CLI_EXIT_OK;
    }
  if (!parsed)
    {
      print_error (error);
      kd_cli_print_usage (stderr, kd_cli_commands, kd_cli_n_commands, inv->group, inv->command);
      return KD_CLI_EXIT_USAGE;
    }

  credentials_path = kd_cli_credentials_path ();
  stored = kd_cli_credentials_load (credentials_path, &error);
  if (error != NULL)
    {
      g_autofree char *message = kd_cli_sanitize (error->message);

      /* A broken file must not lock the user out: login rewrites it. */
      fprintf (stderr, "kvmdesk: warning: ignoring stored credentials: %s\n", message);
      g_clear_error (&error);
    }

  url = kd_cli_resolve_url (inv->url, g_getenv ("KVMDESK_URL"), stored, &error);
  if (url == NULL)
    {
      print_error (error);
      return KD_CLI_EXIT_USAGE;
    }
  http = kd_cli_http_new (url);
  kd_cli_http_set_ca_cert (http, inv->ca_cert != NULL ? inv->ca_cert : g_getenv ("KVMDESK_CA_CERT"));

  cli.url = url;
  cli.token = kd_cli_resolve_token (g_getenv ("KVMDESK_TOKEN"), stored, url);
  cli.json = inv->json;
  cli.stderr_tty = isatty (STDERR_FILENO);
  cli.http = http;
  cli.stored = stored;
  cli.credentials_path = credentials_path;

  if (!inv->command->run (&cli, inv, &error))
    {
      if (g_error_matches (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE))
        {
          print_error (error);
          kd_cli_print_usage (stderr, kd_cli_commands, kd_cli_n_commands, inv->group,
                              inv->command);
          return KD_CLI_EXIT_USAGE;
        }
      if (g_error_matches (error, KD_CLI_HTTP_ERROR, 401)
          && !g_str_equal (inv->command->verb, "login")
          && strstr (error->message, "log in") == NULL)
        {
          const char *user = stored != NULL && stored->user != NULL ? stored->user : "USER";
          g_autofree char *safe_user = kd_cli_sanitize (user);
          g_autofree char *message = kd_cli_sanitize (error->message);

          fprintf (stderr, "kvmdesk: %s (log in with: kvmdesk login %s)\n", message, safe_user);
          return KD_CLI_EXIT_FAILURE;
        }
      print_error (error);
      return KD_CLI_EXIT_FAILURE;
    }
  if (fflush (stdout) != 0 || ferror (stdout))
    {
      fprintf (stderr, "kvmdesk: cannot write the output\n");
      return KD_CLI_EXIT_FAILURE;
    }
  return KD_CLI_EXIT_OK;
}
