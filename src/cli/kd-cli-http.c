/*
 * kd-cli-http.c: HTTP for the kvmdesk CLI, on one libcurl easy handle.
 *
 * Every call ends in either a JSON answer or one error sentence a person can
 * act on: the server's "error" member when it sent one, "cannot reach
 * kvmdeskd at URL: Connection refused" when nothing answered, and a plain
 * description of the status otherwise. Answers are read into memory up to a
 * bound; uploads are streamed from the file, never loaded.
 *
 * There is a connect timeout but no overall one: an image upload or an ACPI
 * shutdown legitimately takes minutes.
 */
#include "kd-cli-http.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#include <glib/gstdio.h>

G_DEFINE_QUARK (kd-cli-http-error-quark, kd_cli_http_error)

struct _KdCliHttp
{
  CURL *curl;
  char *base_url;
  char *ca_cert;
  char *token;
  GByteArray *answer;
  gboolean answer_too_large;
  long status;          /* of the last exchange, 0 when none answered */
  gboolean raw;         /* kd_cli_http_download(): a 2xx body is not JSON */
  char errbuf[CURL_ERROR_SIZE];

  /* upload state */
  int fd;
  int read_errno;
  goffset total;
  KdCliProgressFunc progress;
  gpointer progress_data;
};

/**
 * kd_cli_http_new:
 * @base_url: a normalized kvmdeskd URL (see kd_cli_url_normalize())
 */
KdCliHttp *
kd_cli_http_new (const char *base_url)
{
  KdCliHttp *http = g_new0 (KdCliHttp, 1);

  curl_global_init (CURL_GLOBAL_DEFAULT);
  http->curl = curl_easy_init ();
  http->base_url = g_strdup (base_url);
  http->fd = -1;
  return http;
}

void
kd_cli_http_free (KdCliHttp *http)
{
  if (http == NULL)
    return;
  if (http->curl != NULL)
    curl_easy_cleanup (http->curl);
  g_free (http->base_url);
  g_free (http->ca_cert);
  if (http->token != NULL)
    memset (http->token, 0, strlen (http->token));
  g_free (http->token);
  if (http->answer != NULL)
    g_byte_array_unref (http->answer);
  g_free (http);
}

/**
 * kd_cli_http_set_token:
 * @token: (nullable): the API token sent as "Authorization: Bearer"
 */
void
kd_cli_http_set_token (KdCliHttp *http, const char *token)
{
  g_free (http->token);
  http->token = g_strdup (token);
}

void
kd_cli_http_set_ca_cert (KdCliHttp *http, const char *ca_cert)
{
  g_free (http->ca_cert);
  http->ca_cert = ca_cert != NULL && ca_cert[0] != '\0' ? g_strdup (ca_cert) : NULL;
}

const char *
kd_cli_http_get_base_url (KdCliHttp *http)
{
  return http->base_url;
}

/**
 * kd_cli_http_get_status:
 *
 * Returns: the HTTP status of the last call (200, 201, 404, …), or 0 when
 * the server did not answer.
 */
long
kd_cli_http_get_status (KdCliHttp *http)
{
  return http->status;
}

/**
 * kd_cli_path_escape:
 * Returns: (transfer full): @segment percent-encoded for one URL path
 * segment or query value.
 */
char *
kd_cli_path_escape (const char *segment)
{
  return g_uri_escape_string (segment, NULL, FALSE);
}

static size_t
on_write (char *ptr, size_t size, size_t nmemb, void *user_data)
{
  KdCliHttp *http = user_data;
  size_t n = size * nmemb;

  if (http->answer->len + n > KD_CLI_HTTP_MAX_ANSWER_BYTES)
    {
      http->answer_too_large = TRUE;
      return 0;   /* makes curl stop with CURLE_WRITE_ERROR */
    }
  g_byte_array_append (http->answer, (const guint8 *) ptr, n);
  return n;
}

static size_t
on_read (char *buffer, size_t size, size_t nitems, void *user_data)
{
  KdCliHttp *http = user_data;
  ssize_t n;

  do
    n = read (http->fd, buffer, size * nitems);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    {
      http->read_errno = errno;
      return CURL_READFUNC_ABORT;
    }
  return (size_t) n;
}

static int
on_progress (void *user_data, curl_off_t dltotal, curl_off_t dlnow,
             curl_off_t ultotal, curl_off_t ulnow)
{
  KdCliHttp *http = user_data;

  if (http->progress != NULL)
    http->progress ((goffset) ulnow, http->total, http->progress_data);
  return 0;
}

static const char *
status_phrase (long status)
{
  switch (status)
    {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return NULL;
    }
}

static char *
server_error_message (const char *data, gsize len)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  JsonNode *root, *member;

  if (len == 0 || !json_parser_load_from_data (parser, data, len, NULL))
    return NULL;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;
  member = json_object_get_member (json_node_get_object (root), "error");
  if (member == NULL || !JSON_NODE_HOLDS_VALUE (member)
      || json_node_get_value_type (member) != G_TYPE_STRING
      || json_node_get_string (member)[0] == '\0')
    return NULL;
  return g_strdup (json_node_get_string (member));
}

/**
 * kd_cli_http_read_answer:
 * @base_url: the server, for messages
 * @status: the HTTP status
 * @data: (array length=len): the answer's body
 * @answer: (out) (transfer full) (optional) (nullable): the parsed JSON of a
 *   2xx answer (%NULL for an empty body, as with 204)
 *
 * Returns: %TRUE for a 2xx answer that is empty or JSON; otherwise %FALSE
 * with %KD_CLI_HTTP_ERROR whose code is @status and whose message is the
 * server's "error" member or a description of the status.
 */
gboolean
kd_cli_http_read_answer (const char *base_url, long status, const char *data, gsize len,
                         JsonNode **answer, GError **error)
{
  if (status >= 200 && status < 300)
    {
      g_autoptr(JsonParser) parser = NULL;
      g_autoptr(GError) local = NULL;
      JsonNode *root;

      if (answer != NULL)
        *answer = NULL;
      if (len == 0)
        return TRUE;
      parser = json_parser_new_immutable ();
      if (!g_utf8_validate (data, len, NULL)
          || !json_parser_load_from_data (parser, data, len, &local)
          || (root = json_parser_get_root (parser)) == NULL)
        {
          gsize i = 0;
          gboolean looks_json;

          while (i < len && g_ascii_isspace (data[i]))
            i++;
          looks_json = i < len && (data[i] == '{' || data[i] == '[');
          /* Some other web server, or kvmdeskd sending something broken? */
          if (!looks_json)
            g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_ANSWER,
                         "the answer from %s (HTTP %ld) is not JSON: is this URL kvmdeskd?",
                         base_url, status);
          else if (local == NULL)
            g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_ANSWER,
                         "the answer from %s (HTTP %ld) is JSON with invalid UTF-8 in it "
                         "(a server bug)", base_url, status);
          else
            g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_ANSWER,
                         "the answer from %s (HTTP %ld) is broken JSON (a server bug): %s",
                         base_url, status, local->message);
          return FALSE;
        }
      if (answer != NULL)
        *answer = json_node_copy (root);
      return TRUE;
    }

  {
    g_autofree char *message = server_error_message (data, len);
    const char *phrase = status_phrase (status);

    if (message != NULL)
      g_set_error_literal (error, KD_CLI_HTTP_ERROR, (gint) status, message);
    else if (status >= 300 && status < 400)
      g_set_error (error, KD_CLI_HTTP_ERROR, (gint) status,
                   "%s answered with a redirection (HTTP %ld): is this URL kvmdeskd?",
                   base_url, status);
    else
      g_set_error (error, KD_CLI_HTTP_ERROR, (gint) status,
                   "%s answered HTTP %ld%s%s without an error message", base_url, status,
                   phrase != NULL ? " " : "", phrase != NULL ? phrase : "");
  }
  return FALSE;
}

static void
prepare (KdCliHttp *http, const char *path, struct curl_slist **headers)
{
  g_autofree char *url = g_strconcat (http->base_url, path, NULL);

  curl_easy_reset (http->curl);
  if (http->answer != NULL)
    g_byte_array_unref (http->answer);
  http->answer = g_byte_array_new ();
  http->answer_too_large = FALSE;
  http->errbuf[0] = '\0';
  http->read_errno = 0;
  http->status = 0;

  curl_easy_setopt (http->curl, CURLOPT_URL, url);
  curl_easy_setopt (http->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (http->curl, CURLOPT_ERRORBUFFER, http->errbuf);
  curl_easy_setopt (http->curl, CURLOPT_CONNECTTIMEOUT, (long) KD_CLI_HTTP_CONNECT_TIMEOUT_S);
  curl_easy_setopt (http->curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt (http->curl, CURLOPT_USERAGENT, "kvmdesk/" KD_VERSION);
  curl_easy_setopt (http->curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (http->ca_cert != NULL)
    curl_easy_setopt (http->curl, CURLOPT_CAINFO, http->ca_cert);
  curl_easy_setopt (http->curl, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (http->curl, CURLOPT_WRITEDATA, http);
  if (g_getenv ("KVMDESK_DEBUG") != NULL)
    curl_easy_setopt (http->curl, CURLOPT_VERBOSE, 1L);

  *headers = curl_slist_append (*headers, "Accept: application/json");
  if (http->token != NULL)
    {
      g_autofree char *auth = g_strconcat ("Authorization: Bearer ", http->token, NULL);

      *headers = curl_slist_append (*headers, auth);
      memset (auth, 0, strlen (auth));
    }
}

static gboolean
perform (KdCliHttp *http, struct curl_slist *headers, JsonNode **answer, GError **error)
{
  CURLcode code;
  long status = 0;

  curl_easy_setopt (http->curl, CURLOPT_HTTPHEADER, headers);
  code = curl_easy_perform (http->curl);
  curl_slist_free_all (headers);

  if (code != CURLE_OK)
    {
      long os_errno = 0;
      const char *why;
      gboolean plain;

      curl_easy_getinfo (http->curl, CURLINFO_OS_ERRNO, &os_errno);
      if (http->read_errno != 0)
        {
          g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_LOCAL,
                       "reading the file failed: %s", g_strerror (http->read_errno));
          return FALSE;
        }
      if (http->answer_too_large)
        {
          g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_TRANSFER,
                       "the answer from %s is larger than %d MiB", http->base_url,
                       KD_CLI_HTTP_MAX_ANSWER_BYTES / (1024 * 1024));
          return FALSE;
        }
      why = os_errno != 0 ? g_strerror ((int) os_errno)
            : http->errbuf[0] != '\0' ? http->errbuf : curl_easy_strerror (code);
      plain = g_str_has_prefix (http->base_url, "http://");
      switch (code)
        {
        case CURLE_PEER_FAILED_VERIFICATION:
          if (strstr (http->errbuf, "does not match") != NULL)
            g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_CONNECT,
                         "the certificate of kvmdeskd at %s is not made out to that host name "
                         "or address: use one the certificate names in the URL", http->base_url);
          else if (http->ca_cert != NULL)
            g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_CONNECT,
                         "the certificate of kvmdeskd at %s is not vouched for by '%s' "
                         "(or it expired): give the certificate the server uses with --ca-cert "
                         "FILE or KVMDESK_CA_CERT", http->base_url, http->ca_cert);
          else
            g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_CONNECT,
                         "the certificate of kvmdeskd at %s is not trusted on this machine "
                         "(self-signed, expired or from an unknown CA): if you trust it, give it "
                         "with --ca-cert FILE or KVMDESK_CA_CERT=FILE", http->base_url);
          return FALSE;
        case CURLE_SSL_CACERT_BADFILE:
          g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_LOCAL,
                       "cannot use '%s' (from --ca-cert or KVMDESK_CA_CERT) to check kvmdeskd's "
                       "certificate: it is missing, unreadable or not a PEM certificate",
                       http->ca_cert != NULL ? http->ca_cert : "(system certificates)");
          return FALSE;
        case CURLE_SSL_CONNECT_ERROR:
          g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_CONNECT,
                       "cannot reach kvmdeskd at %s: the TLS handshake failed (%s); if it "
                       "serves plain HTTP, use an http:// URL", http->base_url, why);
          return FALSE;
        case CURLE_GOT_NOTHING:
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_RECV_ERROR:
          if (plain)
            {
              g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_CONNECT,
                           "kvmdeskd at %s did not answer plain HTTP (%s): if it serves HTTPS, "
                           "use an https:// URL", http->base_url, why);
              return FALSE;
            }
          break;
        default:
          break;
        }
      switch (code)
        {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_UNSUPPORTED_PROTOCOL:
          g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_CONNECT,
                       "cannot reach kvmdeskd at %s: %s", http->base_url,
                       code == CURLE_COULDNT_RESOLVE_HOST ? "host name not found" : why);
          return FALSE;
        case CURLE_OPERATION_TIMEDOUT:
          g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_CONNECT,
                       "cannot reach kvmdeskd at %s: no answer within %d seconds",
                       http->base_url, KD_CLI_HTTP_CONNECT_TIMEOUT_S);
          return FALSE;
        default:
          g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_TRANSFER,
                       "the connection to kvmdeskd at %s broke off: %s", http->base_url, why);
          return FALSE;
        }
    }
  curl_easy_getinfo (http->curl, CURLINFO_RESPONSE_CODE, &status);
  http->status = status;
  if (http->raw && status >= 200 && status < 300)
    return TRUE;
  return kd_cli_http_read_answer (http->base_url, status, (const char *) http->answer->data,
                                  http->answer->len, answer, error);
}

/**
 * kd_cli_http_call:
 * @method: "GET", "POST", "PATCH" or "DELETE"
 * @path: the path after the base URL, already escaped: "/api/v1/hosts"
 * @body: (nullable): the JSON body (not with GET); a POST without one sends
 *   no body
 * @answer: (out) (transfer full) (nullable): the JSON answer, %NULL for 204
 *
 * Returns: %TRUE on a 2xx answer; see kd_cli_http_read_answer() for errors.
 */
gboolean
kd_cli_http_call (KdCliHttp *http, const char *method, const char *path, JsonNode *body,
                  JsonNode **answer, GError **error)
{
  struct curl_slist *headers = NULL;
  g_autofree char *json = NULL;

  prepare (http, path, &headers);
  if (g_str_equal (method, "GET"))
    curl_easy_setopt (http->curl, CURLOPT_HTTPGET, 1L);
  else if (g_str_equal (method, "POST") || body != NULL)
    {
      if (body != NULL)
        {
          json = json_to_string (body, FALSE);
          headers = curl_slist_append (headers, "Content-Type: application/json");
        }
      else
        headers = curl_slist_append (headers, "Content-Type:");  /* drop curl's form type */
      curl_easy_setopt (http->curl, CURLOPT_POST, 1L);
      curl_easy_setopt (http->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                        (curl_off_t) (json != NULL ? strlen (json) : 0));
      curl_easy_setopt (http->curl, CURLOPT_COPYPOSTFIELDS, json != NULL ? json : "");
      /* PATCH and PUT with a JSON body: sent like a POST under their own name */
      if (!g_str_equal (method, "POST"))
        curl_easy_setopt (http->curl, CURLOPT_CUSTOMREQUEST, method);
    }
  else
    curl_easy_setopt (http->curl, CURLOPT_CUSTOMREQUEST, method);

  return perform (http, headers, answer, error);
}

/**
 * kd_cli_http_upload:
 * @path: the path after the base URL, already escaped
 * @filename: a regular file, streamed as the body of a PUT
 * @progress: (nullable): called as bytes go out
 * @answer: (out) (transfer full) (nullable): the JSON answer
 *
 * Sends @filename with "Content-Type: application/octet-stream" and its
 * Content-Length, reading it in small pieces. The server may answer (and
 * refuse) before the whole file is sent.
 */
gboolean
kd_cli_http_upload (KdCliHttp *http, const char *path, const char *filename,
                    KdCliProgressFunc progress, gpointer user_data,
                    JsonNode **answer, GError **error)
{
  struct curl_slist *headers = NULL;
  struct stat st;
  gboolean ok;
  int fd;

  fd = g_open (filename, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    {
      int saved = errno;

      g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_LOCAL,
                   "cannot open '%s': %s", filename, g_strerror (saved));
      return FALSE;
    }
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    {
      g_set_error (error, KD_CLI_HTTP_ERROR, KD_CLI_HTTP_ERROR_LOCAL,
                   "'%s' is not a regular file", filename);
      close (fd);
      return FALSE;
    }

  prepare (http, path, &headers);
  http->fd = fd;
  http->total = st.st_size;
  http->progress = progress;
  http->progress_data = user_data;
  headers = curl_slist_append (headers, "Content-Type: application/octet-stream");
  curl_easy_setopt (http->curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt (http->curl, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt (http->curl, CURLOPT_READDATA, http);
  curl_easy_setopt (http->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) st.st_size);
  curl_easy_setopt (http->curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (http->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (http->curl, CURLOPT_XFERINFODATA, http);

  ok = perform (http, headers, answer, error);
  if (!ok && error != NULL && *error != NULL
      && (*error)->domain == KD_CLI_HTTP_ERROR && (*error)->code == KD_CLI_HTTP_ERROR_LOCAL)
    g_prefix_error (error, "'%s': ", filename);
  close (fd);
  http->fd = -1;
  http->progress = NULL;
  http->progress_data = NULL;
  return ok;
}

/**
 * kd_cli_http_download:
 * @path: the path after the base URL, already escaped (query included)
 * @out: (out) (transfer full): the body of a 2xx answer, whatever it is
 *
 * GET for files (.vv, .rdp): an error answer still becomes its sentence.
 */
gboolean
kd_cli_http_download (KdCliHttp *http, const char *path, GBytes **out, GError **error)
{
  struct curl_slist *headers = NULL;
  gboolean ok;

  prepare (http, path, &headers);
  curl_easy_setopt (http->curl, CURLOPT_HTTPGET, 1L);
  http->raw = TRUE;
  ok = perform (http, headers, NULL, error);
  http->raw = FALSE;
  if (ok)
    *out = g_bytes_new (http->answer->data, http->answer->len);
  return ok;
}
