/*
 * test-allocation.c: the broker hands out desktops under interleaved
 * requests — many get-desktop calls issued before any completes, releases
 * mixed in — against an in-memory store and libvirt's test:// driver, in
 * process. No desktop is ever held by two users; a full pool refuses.
 */
#include "broker/kd-broker.h"
#include "common/kd-error.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

static void
rm_rf (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        rm_rf (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

typedef struct {
  KdConfig   *config;
  KdStore    *store;
  KdBroker   *broker;
  char       *tmp;
  GMainLoop  *loop;
  guint       pending;
  GPtrArray  *results;   /* KdDesktopRow* or NULL (refused), by request */
  GPtrArray  *errors;    /* char* messages of refusals */
} Fixture;

static void
quit_when_done (Fixture *f)
{
  if (--f->pending == 0)
    g_main_loop_quit (f->loop);
}

static void
on_host (GObject *src, GAsyncResult *res, gpointer data)
{
  Fixture *f = data;
  g_autoptr(GError) error = NULL;
  g_assert_nonnull (kd_broker_host_add_finish (f->broker, res, &error));
  g_assert_no_error (error);
  quit_when_done (f);
}

static void
on_image (GObject *src, GAsyncResult *res, gpointer data)
{
  Fixture *f = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(KdImageRow) img = kd_broker_image_import_finish (f->broker, res, &error);
  g_assert_no_error (error);
  g_assert_nonnull (img);
  quit_when_done (f);
}

static void
run (Fixture *f, guint pending)
{
  f->pending = pending;
  g_main_loop_run (f->loop);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *image = NULL;
  g_autofree char *uploads = NULL;
  KdTemplateSpec tpl = { .name = "tiny", .vcpus = 1, .memory_mib = 64, .disk_gib = 1 };
  g_autoptr(KdTemplateRow) t = NULL;
  int fd;

  f->tmp = g_dir_make_tmp ("kd-alloc-XXXXXX", &error);
  g_assert_no_error (error);
  f->config = kd_config_new_default ();
  g_free (f->config->storage_pool);
  f->config->storage_pool = g_strdup ("kdalloc-pool");
  g_free (f->config->domain_prefix);
  f->config->domain_prefix = g_strdup ("kdalloc");
  f->config->policy_interval = 3600;      /* the pool manager stays out of the way */
  f->config->reconcile_interval = 3600;
  f->store = kd_store_open (":memory:", &error);
  g_assert_no_error (error);
  f->broker = kd_broker_new (f->config, f->store);
  f->loop = g_main_loop_new (NULL, FALSE);
  f->results = g_ptr_array_new_with_free_func ((GDestroyNotify) kd_desktop_row_free);
  f->errors = g_ptr_array_new_with_free_func (g_free);
  kd_broker_start (f->broker, NULL, NULL);

  {
    /* A node file of its own: test:///default is shared by every
     * connection of the process, and the previous case's may linger. */
    g_autofree char *node = g_build_filename (KD_TEST_DATA, "integration", "host-small.xml", NULL);
    g_autofree char *uri = g_strdup_printf ("test://%s", node);
    {
      KdHostRow spec = { .name = (char *) "sim", .uri = uri };
      kd_broker_host_add_async (f->broker, &spec, "test", on_host, f);
    }
  }
  run (f, 1);

  /* A raw 1 MiB image: the test driver records it without content. */
  image = g_build_filename (f->tmp, "golden.img", NULL);
  fd = g_open (image, O_CREAT | O_WRONLY, 0600);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, 1 << 20), ==, 0);
  close (fd);
  kd_broker_image_import_async (f->broker, "golden", "sim", image, "test", on_image, f);
  run (f, 1);
  t = kd_broker_template_add (f->broker, &tpl, "test", &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_ptr_array_unref (f->results);
  g_ptr_array_unref (f->errors);
  kd_broker_free (f->broker);
  kd_store_free (f->store);
  kd_config_free (f->config);
  g_main_loop_unref (f->loop);
  rm_rf (f->tmp);
  g_free (f->tmp);
}

static gint64
add_user (Fixture *f, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(KdUserRow) u = g_new0 (KdUserRow, 1);

  u->name = g_strdup (name);
  u->password_hash = g_strdup ("$argon2id$not-a-real-hash");
  u->role = g_strdup ("user");
  g_assert_true (kd_store_user_insert (f->store, u, &error));
  g_assert_no_error (error);
  return u->id;
}

static void
add_pool (Fixture *f, const char *name, const char *mode, gint64 size, GPtrArray *users)
{
  g_autoptr(GError) error = NULL;
  KdPoolSpec spec = {
    .name = name, .image = "golden", .template_name = "tiny", .mode = mode,
    .size = size, .has_size = TRUE, .users = users,
  };
  g_autoptr(KdPoolRow) p = kd_broker_pool_add (f->broker, &spec, "test", &error);
  g_assert_no_error (error);
  g_assert_nonnull (p);
}

typedef struct {
  Fixture *f;
  guint    index;
} Request;

static void
on_got (GObject *src, GAsyncResult *res, gpointer data)
{
  Request *r = data;
  Fixture *f = r->f;
  g_autoptr(GError) error = NULL;
  KdDesktopRow *row = kd_broker_pool_get_desktop_finish (f->broker, res, NULL, &error);

  if (row == NULL)
    {
      g_assert_error (error, KD_ERROR, KD_ERROR_BUSY);
      g_ptr_array_add (f->errors, g_strdup (error->message));
    }
  f->results->pdata[r->index] = row;
  g_free (r);
  quit_when_done (f);
}

static void
ask_all (Fixture *f, const char *pool, gint64 *users, guint n)
{
  g_ptr_array_set_size (f->results, n);
  for (guint i = 0; i < n; i++)
    {
      Request *r = g_new0 (Request, 1);
      r->f = f;
      r->index = i;
      /* Every request is issued before any completes. */
      kd_broker_pool_get_desktop_async (f->broker, pool, users[i], FALSE, "test", on_got, r);
    }
  run (f, n);
}

static void
test_interleaved_requests (Fixture *f, gconstpointer data)
{
  enum { N_USERS = 24, SIZE = 6 };
  gint64 users[N_USERS];
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  guint given = 0;

  for (guint i = 0; i < N_USERS; i++)
    {
      char *name = g_strdup_printf ("u%02u", i);
      users[i] = add_user (f, name);
      g_ptr_array_add (names, name);
    }
  add_pool (f, "crowd", "floating", SIZE, names);
  ask_all (f, "crowd", users, N_USERS);

  for (guint i = 0; i < N_USERS; i++)
    {
      KdDesktopRow *row = f->results->pdata[i];
      if (row == NULL)
        continue;
      given++;
      g_assert_cmpint (row->user_id, ==, users[i]);
      /* One desktop, one user. */
      g_assert_false (g_hash_table_contains (seen, row->name));
      g_hash_table_add (seen, row->name);
    }
  g_assert_cmpuint (given, ==, SIZE);
  g_assert_cmpuint (f->errors->len, ==, N_USERS - SIZE);
  for (guint i = 0; i < f->errors->len; i++)
    g_assert_nonnull (strstr (f->errors->pdata[i], "pool 'crowd' is full"));

  /* The store agrees: exactly SIZE desktops, each held once. */
  {
    g_autoptr(KdPoolRow) pool = kd_store_pool_get_by_name (f->store, "crowd", NULL);
    g_autoptr(GPtrArray) rows = kd_store_desktop_list_by_pool (f->store, pool->id, NULL);
    g_assert_cmpuint (rows->len, ==, SIZE);
    for (guint i = 0; i < rows->len; i++)
      g_assert_cmpint (((KdDesktopRow *) rows->pdata[i])->user_id, !=, 0);
  }
}

static void
test_same_user_twice (Fixture *f, gconstpointer data)
{
  gint64 users[4];
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  KdDesktopRow *first;

  users[0] = users[1] = users[2] = users[3] = add_user (f, "solo");
  g_ptr_array_add (names, g_strdup ("solo"));
  add_pool (f, "mine", "persistent", 3, names);
  /* Four interleaved requests of one user: one desktop, answered to all. */
  ask_all (f, "mine", users, 4);
  first = f->results->pdata[0];
  g_assert_nonnull (first);
  for (guint i = 1; i < 4; i++)
    {
      KdDesktopRow *row = f->results->pdata[i];
      g_assert_nonnull (row);
      g_assert_cmpstr (row->name, ==, first->name);
    }
}

static void
on_got_404 (GObject *src, GAsyncResult *res, gpointer data)
{
  Request *r = data;
  Fixture *f = r->f;
  g_autoptr(GError) error = NULL;
  KdDesktopRow *row = kd_broker_pool_get_desktop_finish (f->broker, res, NULL, &error);

  /* Not entitled looks exactly like no such pool. */
  g_assert_null (row);
  g_assert_error (error, KD_ERROR, KD_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no pool named 'closed'");
  g_free (r);
  quit_when_done (f);
}

static void
test_not_entitled (Fixture *f, gconstpointer data)
{
  gint64 users[1];
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;

  add_user (f, "insider");
  users[0] = add_user (f, "outsider");
  g_ptr_array_add (names, g_strdup ("insider"));
  add_pool (f, "closed", "floating", 2, names);
  g_ptr_array_set_size (f->results, 1);
  {
    Request *r = g_new0 (Request, 1);
    r->f = f;
    kd_broker_pool_get_desktop_async (f->broker, "closed", users[0], FALSE, "test", on_got_404, r);
  }
  run (f, 1);
  {
    g_autoptr(KdPoolRow) pool = kd_store_pool_get_by_name (f->store, "closed", NULL);
    g_autoptr(GPtrArray) rows = kd_store_desktop_list_by_pool (f->store, pool->id, NULL);
    g_assert_cmpuint (rows->len, ==, 0);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  kd_hv_init ();
  g_test_add ("/broker/allocation/interleaved-requests", Fixture, NULL, fixture_setup,
              test_interleaved_requests, fixture_teardown);
  g_test_add ("/broker/allocation/same-user-interleaved", Fixture, NULL, fixture_setup,
              test_same_user_twice, fixture_teardown);
  g_test_add ("/broker/allocation/not-entitled", Fixture, NULL, fixture_setup,
              test_not_entitled, fixture_teardown);
  return g_test_run ();
}
