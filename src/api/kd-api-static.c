/*
 * kd-api-static.c: the web dashboard's static files (GET/HEAD of every
 * path outside /api/ and /healthz), read from the configured web_dir.
 *
 * Only safe paths are served: segments of [A-Za-z0-9._@+~-] that do not
 * start with a dot (so no "..", no hidden files, no '%' left over from a
 * %00 the URL decoder kept as text); the resolved file must be a regular
 * file that stays under the resolved web_dir (a symlink may not lead
 * out). Files are sent with MHD_create_response_from_fd: never read into
 * memory. Anything else is a small 404 page; nothing here may abort the
 * daemon. HTML answers carry the security headers (CSP limited to this
 * origin and its WebSocket, no framing, no referrer).
 */
#include "kd-api-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define KD_STATIC_MAX_HOST_LEN   255     /* bytes of a Host header put into the CSP */

static const struct {
  const char *suffix;
  const char *type;
} kd_static_types[] = {
  { ".html", "text/html; charset=utf-8" },
  { ".js", "text/javascript; charset=utf-8" },
  { ".mjs", "text/javascript; charset=utf-8" },
  { ".css", "text/css; charset=utf-8" },
  { ".svg", "image/svg+xml" },
  { ".png", "image/png" },
  { ".ico", "image/x-icon" },
  { ".json", "application/json" },
  { ".woff2", "font/woff2" },
  { ".txt", "text/plain; charset=utf-8" },
};

static const char kd_static_not_found[] =
  "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found - kvmdesk</title></head>\n"
  "<body><h1>Not found</h1><p>There is no such page. <a href=\"/\">Go to the kvmdesk dashboard</a>.</p></body></html>\n";

static const char *
kd_static_type (const char *path)
{
  for (guint i = 0; i < G_N_ELEMENTS (kd_static_types); i++)
    if (g_str_has_suffix (path, kd_static_types[i].suffix))
      return kd_static_types[i].type;
  return "application/octet-stream";
}

/* A path we are willing to look up: '/'-separated segments of plain
 * characters, none empty in the middle, none starting with '.'. */
static gboolean
kd_static_path_ok (const char *path)
{
  const char *p = path;

  if (path[0] != '/' || strlen (path) > KD_API_MAX_URL_LEN)
    return FALSE;
  while (*p == '/')
    {
      p++;
      if (*p == '\0')
        return TRUE;                      /* a trailing slash: a directory */
      if (*p == '.' || *p == '/')
        return FALSE;
      while (*p && *p != '/')
        {
          if (!g_ascii_isalnum (*p) && !strchr ("._-@+~", *p))
            return FALSE;
          p++;
        }
    }
  return *p == '\0';
}

/* The Host header when it is plain enough to go into a header of ours. */
static const char *
kd_static_host (KdApiRequest *req)
{
  const char *host = MHD_lookup_connection_value (req->conn, MHD_HEADER_KIND, "Host");

  if (host == NULL || host[0] == '\0' || strlen (host) > KD_STATIC_MAX_HOST_LEN)
    return NULL;
  for (const char *p = host; *p; p++)
    if (!g_ascii_isalnum (*p) && !strchr (".-:[]", *p))
      return NULL;
  return host;
}

static void
kd_static_security_headers (KdApiRequest *req, struct MHD_Response *resp)
{
  const char *host = kd_static_host (req);
  g_autofree char *csp = NULL;
  g_autofree char *connect = host ? g_strdup_printf (" ws://%s wss://%s", host, host) : g_strdup ("");

  csp = g_strdup_printf ("default-src 'self'; script-src 'self'; style-src 'self'; "
                         "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'%s; "
                         "object-src 'none'; base-uri 'none'; form-action 'self'; "
                         "frame-ancestors 'none'", connect);
  MHD_add_response_header (resp, "Content-Security-Policy", csp);
  MHD_add_response_header (resp, "X-Frame-Options", "DENY");
  MHD_add_response_header (resp, "Referrer-Policy", "no-referrer");
}

/* Queues @resp as the answer, with the headers every static answer has
 * (not through kd_api_respond(): its Cache-Control is the API's). */
static void
kd_static_respond (KdApiRequest *req, guint status, struct MHD_Response *resp,
                   const char *type, const char *cache)
{
  MHD_add_response_header (resp, "Content-Type", type);
  MHD_add_response_header (resp, "Cache-Control", cache);
  MHD_add_response_header (resp, "X-Content-Type-Options", "nosniff");
  if (g_str_has_prefix (type, "text/html"))
    kd_static_security_headers (req, resp);
  if (req->response)
    MHD_destroy_response (req->response);
  req->response = resp;
  req->status = status;
}

static void
kd_static_not_found_page (KdApiRequest *req)
{
  struct MHD_Response *resp =
    MHD_create_response_from_buffer (sizeof kd_static_not_found - 1, (void *) kd_static_not_found,
                                     MHD_RESPMEM_PERSISTENT);

  g_info ("%s %.200s from %s: 404 no such file", req->method, req->path, req->client);
  kd_static_respond (req, 404, resp, "text/html; charset=utf-8", "no-store");
}

/* Resolves @rel under @root; NULL unless it exists and stays under @root. */
static char *
kd_static_resolve (const char *root, const char *rel)
{
  g_autofree char *joined = g_build_filename (root, rel, NULL);
  g_autofree char *real = realpath (joined, NULL);
  gsize n = strlen (root);

  if (real == NULL)
    return NULL;
  if (strncmp (real, root, n) != 0 || (real[n] != '/' && real[n] != '\0' && root[n - 1] != '/'))
    {
      g_message ("web file '%s' leads out of web_dir '%s' (to '%s'): refused", joined, root, real);
      return NULL;
    }
  return g_steal_pointer (&real);
}

/**
 * kd_api_static:
 * @req: a request outside /api/ and /healthz.
 *
 * Answers it from web_dir: the file, 304 when the browser's copy is
 * current, 404 for anything missing or unsafe, 405 for other methods.
 */
void
kd_api_static (KdApiRequest *req)
{
  const char *web_dir = req->server->config->web_dir;
  g_autofree char *root = NULL;
  g_autofree char *rel = NULL;
  g_autofree char *real = NULL;
  g_autofree char *etag = NULL;
  const char *inm;
  struct MHD_Response *resp;
  struct stat st;
  int fd;

  if (!g_str_equal (req->method, "GET") && !g_str_equal (req->method, "HEAD"))
    {
      struct MHD_Response *r = MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
      MHD_add_response_header (r, "Allow", "GET, HEAD");
      kd_static_respond (req, 405, r, "text/plain; charset=utf-8", "no-store");
      return;
    }
  if (!kd_static_path_ok (req->path) || web_dir == NULL || web_dir[0] == '\0' ||
      (root = realpath (web_dir, NULL)) == NULL)
    {
      kd_static_not_found_page (req);
      return;
    }
  rel = g_str_has_suffix (req->path, "/") ? g_strconcat (req->path + 1, "index.html", NULL)
                                           : g_strdup (req->path + 1);
  real = kd_static_resolve (root, rel);
  if (real != NULL && g_file_test (real, G_FILE_TEST_IS_DIR))
    {
      /* A directory without its slash: its index, so relative links
       * would be wrong; send the browser to the slashed path. */
      g_autofree char *index = g_build_filename (real, "index.html", NULL);
      if (g_file_test (index, G_FILE_TEST_IS_REGULAR))
        {
          g_autofree char *to = g_strconcat (req->path, "/", NULL);
          struct MHD_Response *r = MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
          MHD_add_response_header (r, "Location", to);
          kd_static_respond (req, 301, r, "text/plain; charset=utf-8", "no-store");
          return;
        }
      g_clear_pointer (&real, g_free);
    }
  if (real == NULL)
    {
      kd_static_not_found_page (req);
      return;
    }
  fd = open (real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    {
      if (fd >= 0)
        close (fd);
      kd_static_not_found_page (req);
      return;
    }
  etag = g_strdup_printf ("\"%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER "x\"",
                          (gint64) st.st_ino, (gint64) st.st_size,
                          (gint64) st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
  inm = MHD_lookup_connection_value (req->conn, MHD_HEADER_KIND, "If-None-Match");
  if (inm != NULL && g_str_equal (inm, etag))
    {
      close (fd);
      resp = MHD_create_response_from_buffer (0, (void *) "", MHD_RESPMEM_PERSISTENT);
      MHD_add_response_header (resp, "ETag", etag);
      kd_static_respond (req, 304, resp, kd_static_type (real), "no-cache");
      return;
    }
  /* MHD owns the fd from here and closes it with the response. */
  resp = MHD_create_response_from_fd ((uint64_t) st.st_size, fd);
  if (resp == NULL)
    {
      close (fd);
      kd_api_respond_errorf (req, 500, "failed", "cannot send '%s'", real);
      return;
    }
  MHD_add_response_header (resp, "ETag", etag);
  /* No fingerprinted names (no build step): the browser keeps a copy but
   * asks whether it is current (a cheap 304) every time. */
  kd_static_respond (req, 200, resp, kd_static_type (real), "no-cache");
}
