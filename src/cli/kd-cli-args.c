/*
 * kd-cli-args.c: parsing of the kvmdesk command line against the command
 * table, and the help and usage texts derived from that same table (so they
 * cannot drift apart).
 *
 * Only the parse happens here: no network, no files.
 */
#include "kd-cli-args.h"

#include <errno.h>
#include <string.h>

G_DEFINE_QUARK (kd-cli-error-quark, kd_cli_error)

#define KD_CLI_HELP_COLUMN 44

KdCliInvocation *
kd_cli_invocation_new (void)
{
  KdCliInvocation *inv = g_new0 (KdCliInvocation, 1);

  inv->args = g_ptr_array_new_with_free_func (g_free);
  inv->options = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  inv->lists = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) g_ptr_array_unref);
  return inv;
}

void
kd_cli_invocation_free (KdCliInvocation *inv)
{
  if (inv == NULL)
    return;
  g_ptr_array_unref (inv->args);
  g_hash_table_unref (inv->options);
  g_hash_table_unref (inv->lists);
  g_free (inv->url);
  g_free (inv->ca_cert);
  g_free (inv);
}

static const KdCliOption *
find_option (const KdCliCommand *command, const char *name)
{
  if (command == NULL || command->options == NULL)
    return NULL;
  for (const KdCliOption *o = command->options; o->name != NULL; o++)
    if (g_str_equal (o->name, name))
      return o;
  return NULL;
}

static const char *
find_group (const KdCliCommand *table, guint n, const char *word)
{
  for (guint i = 0; i < n; i++)
    if (table[i].group != NULL && g_str_equal (table[i].group, word))
      return table[i].group;
  return NULL;
}

static const KdCliCommand *
find_command (const KdCliCommand *table, guint n, const char *group, const char *verb)
{
  for (guint i = 0; i < n; i++)
    if (g_strcmp0 (table[i].group, group) == 0 && g_str_equal (table[i].verb, verb))
      return &table[i];
  return NULL;
}

static char *
command_name (const KdCliCommand *command)
{
  return command->group != NULL ? g_strconcat (command->group, " ", command->verb, NULL)
                                 : g_strdup (command->verb);
}

static char *
group_verbs (const KdCliCommand *table, guint n, const char *group)
{
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < n; i++)
    if (g_strcmp0 (table[i].group, group) == 0)
      g_string_append_printf (out, "%s%s", out->len > 0 ? ", " : "", table[i].verb);
  return g_string_free (out, FALSE);
}

/**
 * kd_cli_parse:
 * @table: the commands
 * @inv: filled as far as the parse got, even on failure (for the usage text)
 *
 * Returns: %FALSE with %KD_CLI_ERROR_USAGE naming what is wrong. When
 * --help or -h appears anywhere (before "--"), @inv->help is set and the
 * command's arguments are not checked.
 */
gboolean
kd_cli_parse (const KdCliCommand *table, guint n_commands, int argc, char **argv,
              KdCliInvocation *inv, GError **error)
{
  gboolean end_of_options = FALSE;
  gboolean help_word = FALSE;

  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--"))
        break;
      if (g_str_equal (argv[i], "-h") || g_str_equal (argv[i], "--help"))
        inv->help = TRUE;
    }

  for (int i = 1; i < argc; i++)
    {
      const char *arg = argv[i];

      if (!end_of_options && g_str_equal (arg, "--"))
        {
          end_of_options = TRUE;
          continue;
        }
      if (!end_of_options && arg[0] == '-' && arg[1] != '\0')
        {
          g_autofree char *name = NULL;
          const char *value = NULL;
          const char *eq;
          const KdCliOption *option;

          if (g_str_equal (arg, "-h"))
            continue;
          if (arg[1] != '-')
            {
              g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "unknown option '%s'", arg);
              return FALSE;
            }
          eq = strchr (arg, '=');
          name = eq != NULL ? g_strndup (arg + 2, eq - arg - 2) : g_strdup (arg + 2);
          value = eq != NULL ? eq + 1 : NULL;

          if (g_str_equal (name, "help") || g_str_equal (name, "json"))
            {
              if (value != NULL)
                {
                  g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                               "option '--%s' takes no value", name);
                  return FALSE;
                }
              if (g_str_equal (name, "json"))
                inv->json = TRUE;
              continue;
            }
          if (g_str_equal (name, "url") || g_str_equal (name, "ca-cert"))
            {
              char **slot = g_str_equal (name, "url") ? &inv->url : &inv->ca_cert;

              if (value == NULL && i + 1 < argc)
                value = argv[++i];
              if (value == NULL)
                {
                  g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                               "option '--%s' needs a value", name);
                  return FALSE;
                }
              g_free (*slot);
              *slot = g_strdup (value);
              continue;
            }

          option = find_option (inv->command, name);
          if (option == NULL)
            {
              if (inv->command != NULL)
                {
                  g_autofree char *cmd = command_name (inv->command);

                  g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                               "unknown option '--%s' for '%s'", name, cmd);
                }
              else
                g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                             "unknown option '--%s'", name);
              return FALSE;
            }
          if (option->metavar == NULL)
            {
              if (value != NULL)
                {
                  g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                               "option '--%s' takes no value", name);
                  return FALSE;
                }
              g_hash_table_replace (inv->options, g_strdup (name), g_strdup (""));
              continue;
            }
          if (value == NULL && i + 1 < argc)
            value = argv[++i];
          if (value == NULL)
            {
              g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                           "option '--%s' needs a value (%s)", name, option->metavar);
              return FALSE;
            }
          if (option->choices != NULL && !g_strv_contains (option->choices, value))
            {
              g_autofree char *accepted = g_strjoinv ("' or '", (char **) option->choices);

              g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                           "--%s must be '%s', not '%s'", name, accepted, value);
              return FALSE;
            }
          if (!option->repeat && g_hash_table_contains (inv->options, name))
            {
              /* "--size 5 --size 50": which one was meant? */
              g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                           "option '--%s' given more than once", name);
              return FALSE;
            }
          {
            GPtrArray *list = g_hash_table_lookup (inv->lists, name);

            if (list == NULL)
              {
                list = g_ptr_array_new_with_free_func (g_free);
                g_ptr_array_add (list, NULL);   /* kept NULL-terminated */
                g_hash_table_insert (inv->lists, g_strdup (name), list);
              }
            g_ptr_array_insert (list, list->len - 1, g_strdup (value));
          }
          g_hash_table_replace (inv->options, g_strdup (name), g_strdup (value));
          continue;
        }

      /* a word */
      if (inv->command != NULL)
        {
          g_ptr_array_add (inv->args, g_strdup (arg));
          continue;
        }
      if (inv->group != NULL)
        {
          inv->command = find_command (table, n_commands, inv->group, arg);
          if (inv->command == NULL)
            {
              g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                           "unknown command '%s %s'", inv->group, arg);
              return FALSE;
            }
          continue;
        }
      if (!help_word && g_str_equal (arg, "help"))
        {
          /* "kvmdesk help desktop create" is "kvmdesk desktop create --help" */
          help_word = TRUE;
          inv->help = TRUE;
          continue;
        }
      inv->group = find_group (table, n_commands, arg);
      if (inv->group == NULL)
        {
          inv->command = find_command (table, n_commands, NULL, arg);
          if (inv->command == NULL)
            {
              g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "unknown command '%s'", arg);
              return FALSE;
            }
        }
    }

  if (inv->help)
    return TRUE;
  if (inv->command == NULL)
    {
      if (inv->group != NULL)
        {
          g_autofree char *verbs = group_verbs (table, n_commands, inv->group);

          g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                       "'%s' needs a command: %s", inv->group, verbs);
        }
      else
        g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "no command given");
      return FALSE;
    }
  if (inv->args->len < inv->command->min_args)
    {
      g_autofree char *cmd = command_name (inv->command);

      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "'%s' needs %s", cmd,
                   inv->command->args);
      return FALSE;
    }
  if (inv->args->len > inv->command->max_args)
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "unexpected argument '%s'",
                   (const char *) g_ptr_array_index (inv->args, inv->command->max_args));
      return FALSE;
    }
  if (inv->command->options != NULL)
    for (const KdCliOption *o = inv->command->options; o->name != NULL; o++)
      {
        if (o->required && !g_hash_table_contains (inv->options, o->name))
          {
            g_autofree char *cmd = command_name (inv->command);

            if (o->metavar != NULL)
              g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "'%s' needs --%s %s", cmd,
                           o->name, o->metavar);
            else
              g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "'%s' needs --%s", cmd,
                           o->name);
            return FALSE;
          }
        if (o->needs != NULL && g_hash_table_contains (inv->options, o->name)
            && !g_hash_table_contains (inv->options, o->needs))
          {
            g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                         "option '--%s' only makes sense with '--%s'", o->name, o->needs);
            return FALSE;
          }
      }
  return TRUE;
}

/**
 * kd_cli_arg:
 * Returns: (nullable): the positional argument @index, or %NULL.
 */
const char *
kd_cli_arg (const KdCliInvocation *inv, guint index)
{
  return index < inv->args->len ? g_ptr_array_index (inv->args, index) : NULL;
}

/**
 * kd_cli_option:
 * Returns: (nullable): the value of --@name ("" for a flag), or %NULL when
 * it was not given.
 */
const char *
kd_cli_option (const KdCliInvocation *inv, const char *name)
{
  return g_hash_table_lookup (inv->options, name);
}

/**
 * kd_cli_option_list:
 *
 * Returns: (nullable) (transfer none): every value of the repeatable option
 * --@name in the order given, %NULL-terminated; %NULL when it was not given.
 * A single empty value ("--user ''") gives an empty list: the way to clear
 * a list on the server.
 */
const char *const *
kd_cli_option_list (const KdCliInvocation *inv, const char *name)
{
  GPtrArray *list = g_hash_table_lookup (inv->lists, name);
  static const char *const empty[] = { NULL };

  if (list == NULL)
    return NULL;
  if (list->len == 2 && ((const char *) g_ptr_array_index (list, 0))[0] == '\0')
    return empty;
  return (const char *const *) list->pdata;
}

/**
 * kd_cli_option_choice:
 * @choices: %NULL-terminated accepted values
 * @out: set to the index in @choices, only when the option was given and valid
 *
 * Returns: %FALSE with %KD_CLI_ERROR_USAGE naming the accepted values when
 * --@name is given with another value; %TRUE otherwise (given or not).
 */
gboolean
kd_cli_option_choice (const KdCliInvocation *inv, const char *name,
                      const char *const *choices, int *out, GError **error)
{
  const char *text = kd_cli_option (inv, name);
  g_autofree char *accepted = NULL;

  if (text == NULL)
    return TRUE;
  for (int i = 0; choices[i] != NULL; i++)
    if (g_str_equal (choices[i], text))
      {
        *out = i;
        return TRUE;
      }
  accepted = g_strjoinv ("' or '", (char **) choices);
  g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "--%s must be '%s', not '%s'", name,
               accepted, text);
  return FALSE;
}

/**
 * kd_cli_option_int:
 * @out: set only when the option was given and valid
 *
 * Returns: %FALSE with %KD_CLI_ERROR_USAGE when --@name is given but is not
 * an integer in [@min, @max]; %TRUE otherwise (given or not).
 */
gboolean
kd_cli_option_int (const KdCliInvocation *inv, const char *name, gint64 min, gint64 max,
                   gint64 *out, GError **error)
{
  const char *text = kd_cli_option (inv, name);
  gint64 value;

  if (text == NULL)
    return TRUE;
  if (!g_ascii_string_to_signed (text, 10, min, max, &value, NULL))
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                   "--%s must be a whole number from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
                   ", not '%s'", name, min, max, text);
      return FALSE;
    }
  *out = value;
  return TRUE;
}

/**
 * kd_cli_arg_int:
 * @index: the positional argument
 * @metavar: its name in the usage text ("VERSION"), for the message
 * @out: set only when the argument is there and valid
 *
 * Returns: %FALSE with %KD_CLI_ERROR_USAGE when the argument is missing or
 * is not a whole number in [@min, @max].
 */
gboolean
kd_cli_arg_int (const KdCliInvocation *inv, guint index, const char *metavar, gint64 min,
                gint64 max, gint64 *out, GError **error)
{
  const char *text = kd_cli_arg (inv, index);
  gint64 value;

  if (text == NULL)
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE, "%s is missing", metavar);
      return FALSE;
    }
  if (!g_ascii_string_to_signed (text, 10, min, max, &value, NULL))
    {
      g_set_error (error, KD_CLI_ERROR, KD_CLI_ERROR_USAGE,
                   "%s must be a whole number from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
                   ", not '%s'", metavar, min, max, text);
      return FALSE;
    }
  *out = value;
  return TRUE;
}

/**
 * kd_cli_synopsis:
 * Returns: (transfer full): "desktop create NAME --image IMAGE [--start]".
 */
char *
kd_cli_synopsis (const KdCliCommand *command)
{
  GString *out = g_string_new (NULL);
  g_autofree char *name = command_name (command);

  g_string_append (out, name);
  if (command->args != NULL && command->args[0] != '\0')
    g_string_append_printf (out, " %s", command->args);
  if (command->options != NULL)
    for (const KdCliOption *o = command->options; o->name != NULL; o++)
      {
        g_autofree char *text = o->metavar != NULL
          ? g_strdup_printf ("--%s %s", o->name, o->metavar)
          : g_strdup_printf ("--%s", o->name);

        if (o->repeat)
          g_string_append_printf (out, " [%s]...", text);
        else if (o->required)
          g_string_append_printf (out, " %s", text);
        else
          g_string_append_printf (out, " [%s]", text);
      }
  return g_string_free (out, FALSE);
}

static void
print_entry (FILE *out, const char *left, const char *right)
{
  if (strlen (left) + 2 < KD_CLI_HELP_COLUMN)
    fprintf (out, "  %-*s%s\n", KD_CLI_HELP_COLUMN - 2, left, right);
  else
    fprintf (out, "  %s\n  %-*s%s\n", left, KD_CLI_HELP_COLUMN - 2, "", right);
}

static void
print_global_options (FILE *out)
{
  fprintf (out,
           "\nGlobal options (before or after the command):\n"
           "  --url URL     kvmdeskd address; default: $KVMDESK_URL, the URL of the last\n"
           "                login, or " "http://127.0.0.1:8080" "\n"
           "  --ca-cert FILE\n"
           "                trust the kvmdeskd certificate (or its CA) in this PEM file for\n"
           "                https:// URLs, e.g. a self-signed one; default: $KVMDESK_CA_CERT\n"
           "  --json        print the server's JSON instead of tables\n"
           "  -h, --help    show help (kvmdesk COMMAND --help for one command)\n");
}

/**
 * kd_cli_print_help:
 * @group: (nullable): help for the commands of this group
 * @command: (nullable): help for this command (wins over @group)
 *
 * Prints the full help: all commands when both are %NULL.
 */
void
kd_cli_print_help (FILE *out, const KdCliCommand *table, guint n_commands,
                   const char *group, const KdCliCommand *command)
{
  if (command != NULL)
    {
      g_autofree char *synopsis = kd_cli_synopsis (command);

      g_autofree char *summary = g_strdup (command->summary);

      summary[0] = g_ascii_toupper (summary[0]);
      fprintf (out, "Usage: kvmdesk [--url URL] [--json] %s\n\n%s.\n", synopsis, summary);
      if (command->options != NULL && command->options[0].name != NULL)
        {
          fprintf (out, "\nOptions:\n");
          for (const KdCliOption *o = command->options; o->name != NULL; o++)
            {
              g_autofree char *left = o->metavar != NULL
                ? g_strdup_printf ("--%s %s", o->name, o->metavar)
                : g_strdup_printf ("--%s", o->name);

              print_entry (out, left, o->help);
            }
        }
      print_global_options (out);
      return;
    }

  if (group != NULL)
    fprintf (out, "Usage: kvmdesk [--url URL] [--json] %s COMMAND ...\n\nCommands:\n", group);
  else
    fprintf (out,
             "Usage: kvmdesk [--url URL] [--json] COMMAND ...\n\n"
             "Command-line client of kvmdeskd, the kvmdesk virtual desktop broker.\n\n"
             "Commands:\n");
  for (guint i = 0; i < n_commands; i++)
    {
      g_autofree char *synopsis = NULL;

      if (group != NULL && g_strcmp0 (table[i].group, group) != 0)
        continue;
      synopsis = kd_cli_synopsis (&table[i]);
      print_entry (out, synopsis, table[i].summary);
    }
  print_global_options (out);
  if (group == NULL)
    fprintf (out,
             "\nEnvironment:\n"
             "  KVMDESK_URL           kvmdeskd address (see --url)\n"
             "  KVMDESK_CA_CERT       PEM certificate to trust for https:// (see --ca-cert)\n"
             "  KVMDESK_TOKEN         API token to use instead of the stored one\n"
             "  KVMDESK_PASSWORD      password for 'kvmdesk login'\n"
             "  KVMDESK_NEW_PASSWORD  new password for 'user add' and 'user passwd'\n"
             "  KVMDESK_DEBUG         print the HTTP exchange on stderr\n"
             "\nThe token of the last login is kept in $XDG_CONFIG_HOME/kvmdesk/credentials.json\n"
             "(~/.config/kvmdesk/credentials.json), readable only by you.\n"
             "Exit status: 0 success, 1 failure, 2 wrong usage.\n");
}

/**
 * kd_cli_print_usage:
 *
 * Prints the short usage that follows a usage error: the synopsis of
 * @command, or of every command of @group, or of the program.
 */
void
kd_cli_print_usage (FILE *out, const KdCliCommand *table, guint n_commands,
                    const char *group, const KdCliCommand *command)
{
  if (command != NULL)
    {
      g_autofree char *synopsis = kd_cli_synopsis (command);
      g_autofree char *name = command_name (command);

      fprintf (out, "usage: kvmdesk %s\nTry 'kvmdesk %s --help' for more.\n", synopsis, name);
      return;
    }
  if (group != NULL)
    {
      gboolean first = TRUE;

      for (guint i = 0; i < n_commands; i++)
        {
          g_autofree char *synopsis = NULL;

          if (g_strcmp0 (table[i].group, group) != 0)
            continue;
          synopsis = kd_cli_synopsis (&table[i]);
          fprintf (out, "%s kvmdesk %s\n", first ? "usage:" : "      ", synopsis);
          first = FALSE;
        }
      fprintf (out, "Try 'kvmdesk %s --help' for more.\n", group);
      return;
    }
  fprintf (out, "usage: kvmdesk [--url URL] [--json] COMMAND ...\n"
                "Try 'kvmdesk --help' for the list of commands.\n");
}
