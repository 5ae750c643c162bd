/*
 * kd-cli-commands.h: the state one kvmdesk CLI run shares between its
 * commands. The commands themselves are reached through kd_cli_commands[].
 */
#pragma once

#include "kd-cli-args.h"
#include "kd-cli-credentials.h"
#include "kd-cli-http.h"

G_BEGIN_DECLS

struct _KdCli {
  char             *url;               /* normalized URL in use */
  const char       *token;             /* borrowed from env or stored, may be NULL */
  gboolean          json;              /* --json */
  gboolean          stderr_tty;        /* progress with \r when TRUE */
  KdCliHttp        *http;
  KdCliCredentials *stored;            /* credentials file contents, may be NULL */
  char             *credentials_path;
};

G_END_DECLS
