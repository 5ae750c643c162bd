/*
 * test-cli-args.c: the kvmdesk CLI's command line (against the real command
 * table), the choice of URL and token, and the credentials file.
 */
#include <string.h>
#include <sys/stat.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "cli/kd-cli-args.h"
#include "cli/kd-cli-credentials.h"

static KdCliInvocation *
parse_line (const char *line, GError **error)
{
  g_autofree char *full = g_strconcat ("kvmdesk ", line, NULL);
  g_auto(GStrv) argv = NULL;
  KdCliInvocation *inv = kd_cli_invocation_new ();
  int argc = 0;

  g_assert_true (g_shell_parse_argv (full, &argc, &argv, NULL));
  kd_cli_parse (kd_cli_commands, kd_cli_n_commands, argc, argv, inv, error);
  return inv;
}

static void
test_parse_ok (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdCliInvocation) inv = NULL;

  inv = parse_line ("--json desktop create d1 --image deb --template=small --start "
                    "--url http://h:1 --ca-cert=/tmp/ca.pem", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (inv->ca_cert, ==, "/tmp/ca.pem");
  g_assert_nonnull (inv->command);
  g_assert_cmpstr (inv->command->group, ==, "desktop");
  g_assert_cmpstr (inv->command->verb, ==, "create");
  g_assert_true (inv->json);
  g_assert_cmpstr (inv->url, ==, "http://h:1");
  g_assert_cmpstr (kd_cli_arg (inv, 0), ==, "d1");
  g_assert_null (kd_cli_arg (inv, 1));
  g_assert_cmpstr (kd_cli_option (inv, "image"), ==, "deb");
  g_assert_cmpstr (kd_cli_option (inv, "template"), ==, "small");
  g_assert_cmpstr (kd_cli_option (inv, "start"), ==, "");
  g_assert_null (kd_cli_option (inv, "host"));
  g_clear_pointer (&inv, kd_cli_invocation_free);

  /* "--" ends the options: what follows is positional, even "--json" */
  inv = parse_line ("host add --json -- --odd test:///default", &error);
  g_assert_no_error (error);
  g_assert_true (inv->json);
  g_assert_cmpstr (kd_cli_arg (inv, 0), ==, "--odd");
  g_assert_cmpstr (kd_cli_arg (inv, 1), ==, "test:///default");
  g_clear_pointer (&inv, kd_cli_invocation_free);

  inv = parse_line ("host add -- h1 uri --json", &error);
  g_assert_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE);
  g_assert_cmpstr (error->message, ==, "unexpected argument '--json'");
  g_clear_pointer (&inv, kd_cli_invocation_free);
  g_clear_error (&error);

  inv = parse_line ("events --limit 5 --json", &error);
  g_assert_no_error (error);
  g_assert_true (inv->json);
  g_assert_cmpstr (inv->command->verb, ==, "events");
  g_assert_cmpstr (kd_cli_option (inv, "limit"), ==, "5");
}

static void
test_parse_usage_errors (void)
{
  static const struct { const char *line; const char *message; } cases[] = {
    { "", "no command given" },
    { "bogus", "unknown command 'bogus'" },
    { "desktop", "'desktop' needs a command: create, list, mine, show, get, release, start, "
                 "shutdown, reboot, poweroff, reset, heartbeat, delete, vv, rdp" },
    { "pool", "'pool' needs a command: add, list, show, set, remove" },
    { "pool add p --image i --template t --size 1",
      "'pool add' needs --mode floating|persistent" },
    { "pool add p --image i --template t --mode floating",
      "'pool add' needs --size N" },
    { "pool add p --image i --template t --mode fixed --size 1",
      "--mode must be 'floating' or 'persistent', not 'fixed'" },
    { "pool set p --size 2 --size 3", "option '--size' given more than once" },
    { "pool set p --maintenance", "option '--maintenance' needs a value (on|off)" },
    { "pool set p --maintenance yes", "--maintenance must be 'on' or 'off', not 'yes'" },
    { "pool set p --maintenance=ON", "--maintenance must be 'on' or 'off', not 'ON'" },
    { "pool set p --mode floating", "unknown option '--mode' for 'pool set'" },
    { "user add", "'user add' needs NAME" },
    { "user add u --role root", "--role must be 'admin' or 'user', not 'root'" },
    { "user passwd a b", "unexpected argument 'b'" },
    { "group add", "'group add' needs NAME" },
    { "desktop get", "'desktop get' needs POOL" },
    { "desktop get p --timeout 10", "option '--timeout' only makes sense with '--wait'" },
    { "desktop get p --wait --timeout", "option '--timeout' needs a value (S)" },
    { "desktop heartbeat d --disconnected=1", "option '--disconnected' takes no value" },
    { "desktop mine extra", "unexpected argument 'extra'" },
    { "me --wait", "unknown option '--wait' for 'me'" },
    { "events --pool", "option '--pool' needs a value (NAME)" },
    { "desktop frobnicate d1", "unknown command 'desktop frobnicate'" },
    { "desktop create d1 --image i", "'desktop create' needs --template TEMPLATE" },
    { "desktop create --image i --template t", "'desktop create' needs NAME" },
    { "host add h1", "'host add' needs NAME URI" },
    { "host list extra", "unexpected argument 'extra'" },
    { "host list --bogus", "unknown option '--bogus' for 'host list'" },
    { "--bogus host list", "unknown option '--bogus'" },
    { "desktop create d1 --image", "option '--image' needs a value (IMAGE)" },
    { "desktop create d1 --start=yes", "option '--start' takes no value" },
    { "host list --url", "option '--url' needs a value" },
    { "host list --ca-cert", "option '--ca-cert' needs a value" },
    { "host list -x", "unknown option '-x'" },
    { "host list --json=1", "option '--json' takes no value" },
    { "image", "'image' needs a command: import, list, show, delete, edit, publish, "
               "cancel-edit, copy, versions, rollback" },
    { "image edit img", "'image edit' needs --template TEMPLATE" },
    { "image edit --template t", "'image edit' needs NAME" },
    { "image edit img --template", "option '--template' needs a value (TEMPLATE)" },
    { "image edit img --template t --template u", "option '--template' given more than once" },
    { "image edit img --template t --note x", "unknown option '--note' for 'image edit'" },
    { "image publish", "'image publish' needs NAME" },
    { "image publish img --note", "option '--note' needs a value (TEXT)" },
    { "image publish img extra", "unexpected argument 'extra'" },
    { "image publish img --template t", "unknown option '--template' for 'image publish'" },
    { "image cancel-edit", "'image cancel-edit' needs NAME" },
    { "image cancel-edit img --force", "unknown option '--force' for 'image cancel-edit'" },
    { "image versions", "'image versions' needs NAME" },
    { "image versions a b", "unexpected argument 'b'" },
    { "image rollback img", "'image rollback' needs NAME VERSION" },
    { "image rollback img 1 2", "unexpected argument '2'" },
    { "image unpublish img", "unknown command 'image unpublish'" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(KdCliInvocation) inv = parse_line (cases[i].line, &error);

      g_assert_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE);
      g_assert_cmpstr (error->message, ==, cases[i].message);
      g_assert_false (inv->help);
    }
}

static void
test_parse_help (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdCliInvocation) a = parse_line ("desktop create --bogus --help", &error);
  g_autoptr(KdCliInvocation) b = NULL;
  g_autoptr(KdCliInvocation) c = NULL;
  g_autoptr(KdCliInvocation) d = NULL;

  /* --help wins over an error on the same line, for the command named */
  g_assert_true (a->help);
  g_assert_cmpstr (a->command->verb, ==, "create");
  g_clear_error (&error);

  b = parse_line ("help template add", &error);
  g_assert_no_error (error);
  g_assert_true (b->help);
  g_assert_cmpstr (b->command->group, ==, "template");

  c = parse_line ("image -h", &error);
  g_assert_no_error (error);
  g_assert_true (c->help);
  g_assert_null (c->command);
  g_assert_cmpstr (c->group, ==, "image");

  d = parse_line ("--help", &error);
  g_assert_no_error (error);
  g_assert_true (d->help);
  g_assert_null (d->group);
}

static void
test_option_int (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdCliInvocation) inv = parse_line ("template add t --vcpus 4 --memory 1k", &error);
  gint64 v = -1;

  g_assert_no_error (error);
  g_assert_true (kd_cli_option_int (inv, "vcpus", 1, 256, &v, &error));
  g_assert_cmpint (v, ==, 4);
  g_assert_false (kd_cli_option_int (inv, "memory", 64, 1024, &v, &error));
  g_assert_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE);
  g_assert_cmpstr (error->message, ==, "--memory must be a whole number from 64 to 1024, not '1k'");
  g_clear_error (&error);
  v = 7;
  g_assert_true (kd_cli_option_int (inv, "disk", 1, 10, &v, &error));   /* not given */
  g_assert_cmpint (v, ==, 7);
}

static void
test_repeated_options (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdCliInvocation) inv = NULL;
  const char *const *list;

  inv = parse_line ("pool add p --image i --template t --mode persistent --size 3 "
                    "--group staff --group=lab --user ann --warm 1", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (inv->command->group, ==, "pool");
  g_assert_cmpstr (inv->command->verb, ==, "add");
  list = kd_cli_option_list (inv, "group");
  g_assert_nonnull (list);
  g_assert_cmpuint (g_strv_length ((char **) list), ==, 2);
  g_assert_cmpstr (list[0], ==, "staff");
  g_assert_cmpstr (list[1], ==, "lab");
  list = kd_cli_option_list (inv, "user");
  g_assert_cmpuint (g_strv_length ((char **) list), ==, 1);
  g_assert_cmpstr (list[0], ==, "ann");
  g_assert_null (kd_cli_option_list (inv, "host"));   /* not given: not sent */
  g_assert_cmpstr (kd_cli_option (inv, "group"), ==, "lab");
  g_assert_cmpstr (kd_cli_option (inv, "mode"), ==, "persistent");
  g_clear_pointer (&inv, kd_cli_invocation_free);

  /* a repeatable option after the positional argument and with "=" alike */
  inv = parse_line ("user add --group a bob --group=b --group c", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (kd_cli_arg (inv, 0), ==, "bob");
  list = kd_cli_option_list (inv, "group");
  g_assert_cmpuint (g_strv_length ((char **) list), ==, 3);
  g_assert_cmpstr (list[2], ==, "c");
  g_clear_pointer (&inv, kd_cli_invocation_free);

  /* one empty value is the empty list: how 'pool set' clears a list */
  inv = parse_line ("pool set p --host ''", &error);
  g_assert_no_error (error);
  list = kd_cli_option_list (inv, "host");
  g_assert_nonnull (list);
  g_assert_null (list[0]);
  g_assert_null (kd_cli_option_list (inv, "user"));
  g_clear_pointer (&inv, kd_cli_invocation_free);

  /* ...but an empty value among others is kept (the server names it) */
  inv = parse_line ("pool set p --user a --user ''", &error);
  g_assert_no_error (error);
  list = kd_cli_option_list (inv, "user");
  g_assert_cmpuint (g_strv_length ((char **) list), ==, 2);
  g_assert_cmpstr (list[1], ==, "");
}

static void
test_option_choice (void)
{
  static const char *const on_off[] = { "on", "off", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(KdCliInvocation) on = parse_line ("pool set p --maintenance on", &error);
  g_autoptr(KdCliInvocation) off = NULL;
  g_autoptr(KdCliInvocation) none = NULL;
  int index = -1;

  g_assert_no_error (error);
  g_assert_true (kd_cli_option_choice (on, "maintenance", on_off, &index, &error));
  g_assert_cmpint (index, ==, 0);

  off = parse_line ("pool set --maintenance=off p", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (kd_cli_arg (off, 0), ==, "p");
  g_assert_true (kd_cli_option_choice (off, "maintenance", on_off, &index, &error));
  g_assert_cmpint (index, ==, 1);

  /* not given: TRUE, and the output keeps its default */
  none = parse_line ("pool set p --size 4", &error);
  g_assert_no_error (error);
  index = 7;
  g_assert_true (kd_cli_option_choice (none, "maintenance", on_off, &index, &error));
  g_assert_cmpint (index, ==, 7);

  /* the helper refuses on its own too (for options without a table of choices) */
  g_assert_false (kd_cli_option_choice (none, "size", on_off, &index, &error));
  g_assert_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE);
  g_assert_cmpstr (error->message, ==, "--size must be 'on' or 'off', not '4'");
  g_assert_cmpint (index, ==, 7);
}

static void
test_wait_timeout (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdCliInvocation) inv = NULL;
  gint64 timeout = 300;

  inv = parse_line ("desktop get office --wait", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (inv->command->verb, ==, "get");
  g_assert_cmpstr (kd_cli_arg (inv, 0), ==, "office");
  g_assert_cmpstr (kd_cli_option (inv, "wait"), ==, "");
  g_assert_null (kd_cli_option (inv, "timeout"));
  g_assert_true (kd_cli_option_int (inv, "timeout", 1, 86400, &timeout, &error));
  g_assert_cmpint (timeout, ==, 300);   /* the default stays */
  g_clear_pointer (&inv, kd_cli_invocation_free);

  /* order does not matter: --timeout before --wait */
  inv = parse_line ("desktop get --timeout=20 office --wait --json", &error);
  g_assert_no_error (error);
  g_assert_true (inv->json);
  g_assert_true (kd_cli_option_int (inv, "timeout", 1, 86400, &timeout, &error));
  g_assert_cmpint (timeout, ==, 20);
  g_clear_pointer (&inv, kd_cli_invocation_free);

  inv = parse_line ("desktop get office --wait --timeout 0", &error);
  g_assert_no_error (error);
  g_assert_false (kd_cli_option_int (inv, "timeout", 1, 86400, &timeout, &error));
  g_assert_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE);
  g_assert_cmpstr (error->message, ==, "--timeout must be a whole number from 1 to 86400, not '0'");
  g_assert_cmpint (timeout, ==, 20);
  g_clear_error (&error);
  g_clear_pointer (&inv, kd_cli_invocation_free);

  inv = parse_line ("desktop get office --timeout 5", &error);
  g_assert_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE);
  g_clear_error (&error);
  g_clear_pointer (&inv, kd_cli_invocation_free);

  /* --help still wins over the missing --wait */
  inv = parse_line ("desktop get office --timeout 5 --help", &error);
  g_assert_no_error (error);
  g_assert_true (inv->help);
  g_clear_pointer (&inv, kd_cli_invocation_free);

  inv = parse_line ("desktop heartbeat d1 --disconnected", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (kd_cli_option (inv, "disconnected"), ==, "");
}

static void
test_image_versions (void)
{
  static const struct { const char *line; const char *message; } bad_versions[] = {
    { "image rollback img two", "VERSION must be a whole number from 1 to 2147483647, not 'two'" },
    { "image rollback img 0", "VERSION must be a whole number from 1 to 2147483647, not '0'" },
    { "image rollback img -- -1", "VERSION must be a whole number from 1 to 2147483647, not '-1'" },
    { "image rollback img 2.5", "VERSION must be a whole number from 1 to 2147483647, not '2.5'" },
    { "image rollback img ''", "VERSION must be a whole number from 1 to 2147483647, not ''" },
    { "image rollback img 99999999999",
      "VERSION must be a whole number from 1 to 2147483647, not '99999999999'" },
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(KdCliInvocation) inv = NULL;
  gint64 version = -1;

  inv = parse_line ("image edit golden --template=small --host hv2 --json", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (inv->command->group, ==, "image");
  g_assert_cmpstr (inv->command->verb, ==, "edit");
  g_assert_true (inv->json);
  g_assert_cmpstr (kd_cli_arg (inv, 0), ==, "golden");
  g_assert_cmpstr (kd_cli_option (inv, "template"), ==, "small");
  g_assert_cmpstr (kd_cli_option (inv, "host"), ==, "hv2");
  g_clear_pointer (&inv, kd_cli_invocation_free);

  inv = parse_line ("image edit --template small golden", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (kd_cli_arg (inv, 0), ==, "golden");
  g_assert_null (kd_cli_option (inv, "host"));   /* not given: the server chooses */
  g_clear_pointer (&inv, kd_cli_invocation_free);

  /* a note is one value, spaces and all; without --note none is sent */
  inv = parse_line ("image publish golden --note 'security updates, new browser'", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (inv->command->verb, ==, "publish");
  g_assert_cmpstr (kd_cli_option (inv, "note"), ==, "security updates, new browser");
  g_clear_pointer (&inv, kd_cli_invocation_free);
  inv = parse_line ("image publish --note= golden", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (kd_cli_option (inv, "note"), ==, "");
  g_clear_pointer (&inv, kd_cli_invocation_free);
  inv = parse_line ("image publish golden", &error);
  g_assert_no_error (error);
  g_assert_null (kd_cli_option (inv, "note"));
  g_clear_pointer (&inv, kd_cli_invocation_free);

  inv = parse_line ("image cancel-edit golden", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (inv->command->verb, ==, "cancel-edit");
  g_clear_pointer (&inv, kd_cli_invocation_free);

  inv = parse_line ("--json image versions golden", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (inv->command->verb, ==, "versions");
  g_assert_true (inv->json);
  g_clear_pointer (&inv, kd_cli_invocation_free);

  inv = parse_line ("image rollback golden 3", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (inv->command->verb, ==, "rollback");
  g_assert_true (kd_cli_arg_int (inv, 1, "VERSION", 1, G_MAXINT32, &version, &error));
  g_assert_no_error (error);
  g_assert_cmpint (version, ==, 3);
  /* a missing argument is named, and the output is left alone */
  version = 7;
  g_assert_false (kd_cli_arg_int (inv, 2, "COUNT", 1, 10, &version, &error));
  g_assert_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE);
  g_assert_cmpstr (error->message, ==, "COUNT is missing");
  g_assert_cmpint (version, ==, 7);
  g_clear_error (&error);
  g_clear_pointer (&inv, kd_cli_invocation_free);

  /* the parse accepts any word; the number is checked before any request */
  for (guint i = 0; i < G_N_ELEMENTS (bad_versions); i++)
    {
      inv = parse_line (bad_versions[i].line, &error);
      g_assert_no_error (error);
      version = 7;
      g_assert_false (kd_cli_arg_int (inv, 1, "VERSION", 1, G_MAXINT32, &version, &error));
      g_assert_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE);
      g_assert_cmpstr (error->message, ==, bad_versions[i].message);
      g_assert_cmpint (version, ==, 7);
      g_clear_error (&error);
      g_clear_pointer (&inv, kd_cli_invocation_free);
    }
}

static const KdCliOption *
find_in (const KdCliCommand *c, const char *name)
{
  for (const KdCliOption *o = c->options; o != NULL && o->name != NULL; o++)
    if (g_str_equal (o->name, name))
      return o;
  return NULL;
}

static void
test_synopsis_complete (void)
{
  /* every command has a summary, a handler and a synopsis with its options */
  for (guint i = 0; i < kd_cli_n_commands; i++)
    {
      const KdCliCommand *c = &kd_cli_commands[i];
      g_autofree char *synopsis = kd_cli_synopsis (c);

      g_assert_nonnull (c->run);
      g_assert_nonnull (c->summary);
      g_assert_cmpuint (c->min_args, <=, c->max_args);
      if (c->options != NULL)
        for (const KdCliOption *o = c->options; o->name != NULL; o++)
          {
            g_autofree char *flag = g_strconcat ("--", o->name, NULL);

            g_assert_nonnull (strstr (synopsis, flag));
            if (o->repeat)
              {
                g_autofree char *repeated = g_strdup_printf ("[--%s %s]...", o->name,
                                                             o->metavar);

                g_assert_nonnull (o->metavar);
                g_assert_nonnull (strstr (synopsis, repeated));
              }
            if (o->needs != NULL)
              g_assert_nonnull (find_in (c, o->needs));
            if (o->choices != NULL)
              g_assert_nonnull (o->metavar);
          }
    }
}

static void
test_url (void)
{
  static const struct { const char *in; const char *out; } good[] = {
    { "http://127.0.0.1:8080", "http://127.0.0.1:8080" },
    { " https://broker.example:443/ ", "https://broker.example:443" },
    { "http://h:1/api/v1/", "http://h:1" },
    { "http://h/prefix//", "http://h/prefix" },
  };
  static const char *const bad[] = {
    "", "127.0.0.1:8080", "ftp://h", "http://", "http://h/?q=1", "not a url",
  };

  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *url = kd_cli_url_normalize (good[i].in, &error);

      g_assert_no_error (error);
      g_assert_cmpstr (url, ==, good[i].out);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *url = kd_cli_url_normalize (bad[i], &error);

      g_assert_null (url);
      g_assert_nonnull (error);
    }
}

static void
test_resolve (void)
{
  KdCliCredentials stored = { (char *) "http://stored:1/", (char *) "admin",
                              (char *) "tok-stored", NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *u1 = kd_cli_resolve_url ("http://flag:1", "http://env:1", &stored, &error);
  g_autofree char *u2 = kd_cli_resolve_url (NULL, "http://env:1", &stored, &error);
  g_autofree char *u3 = kd_cli_resolve_url (NULL, "", &stored, &error);
  g_autofree char *u4 = kd_cli_resolve_url (NULL, NULL, NULL, &error);
  g_autofree char *u5 = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (u1, ==, "http://flag:1");
  g_assert_cmpstr (u2, ==, "http://env:1");
  g_assert_cmpstr (u3, ==, "http://stored:1");
  g_assert_cmpstr (u4, ==, KD_CLI_DEFAULT_URL);
  u5 = kd_cli_resolve_url (NULL, "nonsense", &stored, &error);
  g_assert_null (u5);
  g_assert_nonnull (error);
  g_assert_true (g_str_has_prefix (error->message, "KVMDESK_URL: "));

  /* the env token wins; a stored token only goes to the URL it came from */
  g_assert_cmpstr (kd_cli_resolve_token ("tok-env", &stored, "http://other:1"), ==, "tok-env");
  g_assert_cmpstr (kd_cli_resolve_token (NULL, &stored, "http://stored:1"), ==, "tok-stored");
  g_assert_null (kd_cli_resolve_token (NULL, &stored, "http://other:1"));
  g_assert_null (kd_cli_resolve_token ("", NULL, "http://stored:1"));
}

static void
test_credentials_file (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp = g_dir_make_tmp ("kd-cli-test-XXXXXX", &error);
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autoptr(KdCliCredentials) loaded = NULL;
  g_autoptr(KdCliCredentials) absent = NULL;
  g_autoptr(KdCliCredentials) broken = NULL;
  KdCliCredentials creds = { (char *) "http://h:1", (char *) "admin", (char *) "t0k",
                             (char *) "2026-11-23T22:00:00Z" };
  struct stat st;

  g_assert_no_error (error);
  dir = g_build_filename (tmp, "kvmdesk", NULL);
  path = g_build_filename (dir, "credentials.json", NULL);

  absent = kd_cli_credentials_load (path, &error);
  g_assert_no_error (error);
  g_assert_null (absent);

  g_assert_true (kd_cli_credentials_save (&creds, path, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_cmpint (g_stat (dir, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);

  loaded = kd_cli_credentials_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (loaded->url, ==, "http://h:1");
  g_assert_cmpstr (loaded->user, ==, "admin");
  g_assert_cmpstr (loaded->token, ==, "t0k");
  g_assert_cmpstr (loaded->expires_at, ==, "2026-11-23T22:00:00Z");

  /* logged out: the token is null, the URL stays */
  creds.token = NULL;
  creds.expires_at = NULL;
  g_assert_true (kd_cli_credentials_save (&creds, path, &error));
  g_clear_pointer (&loaded, kd_cli_credentials_free);
  loaded = kd_cli_credentials_load (path, &error);
  g_assert_no_error (error);
  g_assert_null (loaded->token);
  g_assert_cmpstr (loaded->url, ==, "http://h:1");

  g_assert_true (g_file_set_contents (path, "{\"user\": 1", -1, NULL));
  broken = kd_cli_credentials_load (path, &error);
  g_assert_null (broken);
  g_assert_nonnull (error);

  g_unlink (path);
  g_rmdir (dir);
  g_rmdir (tmp);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/args/parse", test_parse_ok);
  g_test_add_func ("/cli/args/usage-errors", test_parse_usage_errors);
  g_test_add_func ("/cli/args/help", test_parse_help);
  g_test_add_func ("/cli/args/option-int", test_option_int);
  g_test_add_func ("/cli/args/repeated-options", test_repeated_options);
  g_test_add_func ("/cli/args/option-choice", test_option_choice);
  g_test_add_func ("/cli/args/wait-timeout", test_wait_timeout);
  g_test_add_func ("/cli/args/image-versions", test_image_versions);
  g_test_add_func ("/cli/args/synopsis-complete", test_synopsis_complete);
  g_test_add_func ("/cli/url/normalize", test_url);
  g_test_add_func ("/cli/url/resolve-url-and-token", test_resolve);
  g_test_add_func ("/cli/credentials/file-mode-and-round-trip", test_credentials_file);
  return g_test_run ();
}
