/*
 * test-gateway-ws.c: the WebSocket upgrade: RFC 6455's accept example,
 * request validation and subprotocol choice, the Origin check.
 */
#include "gateway/kd-gateway.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

/* RFC 6455 section 1.3's example (computed independently with Python's
 * hashlib too; a value of "s3pPLMBiTxaQ9kYGzzhZOxOo+xQ=" is a misquote) */
static void
test_accept_key (void)
{
  g_autofree char *accept = kd_gateway_ws_accept_key (KEY);

  g_assert_cmpstr (accept, ==, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

typedef struct {
  const char *name;
  KdGatewayWsRequest request;
  gboolean ok;
  const char *protocol;
} RequestCase;

static const RequestCase request_cases[] = {
  { "novnc", { "GET", "websocket", "Upgrade", "13", KEY, "binary" }, TRUE, "binary" },
  { "firefox", { "GET", "websocket", "keep-alive, Upgrade", "13", KEY, "binary, base64" }, TRUE, "binary" },
  { "case", { "GET", "WebSocket", "UPGRADE", "13", KEY, NULL }, TRUE, NULL },
  { "other-protocol", { "GET", "websocket", "Upgrade", "13", KEY, "base64" }, TRUE, NULL },
  { "post", { "POST", "websocket", "Upgrade", "13", KEY, NULL }, FALSE, NULL },
  { "no-method", { NULL, "websocket", "Upgrade", "13", KEY, NULL }, FALSE, NULL },
  { "no-upgrade", { "GET", NULL, "Upgrade", "13", KEY, NULL }, FALSE, NULL },
  { "upgrade-h2c", { "GET", "h2c", "Upgrade", "13", KEY, NULL }, FALSE, NULL },
  { "connection-close", { "GET", "websocket", "close", "13", KEY, NULL }, FALSE, NULL },
  { "connection-substring", { "GET", "websocket", "upgraded", "13", KEY, NULL }, FALSE, NULL },
  { "version-8", { "GET", "websocket", "Upgrade", "8", KEY, NULL }, FALSE, NULL },
  { "no-version", { "GET", "websocket", "Upgrade", NULL, KEY, NULL }, FALSE, NULL },
  { "no-key", { "GET", "websocket", "Upgrade", "13", NULL, NULL }, FALSE, NULL },
  { "short-key", { "GET", "websocket", "Upgrade", "13", "dGhlIHNhbXBsZQ==", NULL }, FALSE, NULL },
  { "key-17-bytes", { "GET", "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZSE=", NULL }, FALSE, NULL },
  { "key-bad-char", { "GET", "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25j*Q==", NULL }, FALSE, NULL },
  { "key-bad-tail", { "GET", "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZR==", NULL }, FALSE, NULL },
};

static void
test_request (gconstpointer data)
{
  const RequestCase *c = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *accept = NULL;
  g_autofree char *protocol = NULL;
  gboolean ok = kd_gateway_ws_validate_request (&c->request, &accept, &protocol, &error);

  if (c->ok)
    {
      g_assert_no_error (error);
      g_assert_true (ok);
      g_assert_cmpstr (accept, ==, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
      g_assert_cmpstr (protocol, ==, c->protocol);
    }
  else
    {
      g_assert_false (ok);
      g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_BAD_UPGRADE);
      g_assert_null (accept);
      g_test_message ("%s: %s", c->name, error->message);
    }
}

typedef struct {
  const char *origin;
  const char *host;
  gboolean tls;
  gboolean allowed;
} OriginCase;

static const OriginCase origin_cases[] = {
  { "http://broker:8080", "broker:8080", FALSE, TRUE },
  { "http://Broker:8080", "broker:8080", FALSE, TRUE },
  { "https://broker", "broker", TRUE, TRUE },
  { "https://broker:443", "broker", TRUE, TRUE },
  { "https://broker", "broker:443", TRUE, TRUE },
  { "http://broker:80", "broker", FALSE, TRUE },
  { "http://[::1]:8080", "[::1]:8080", FALSE, TRUE },
  { "http://127.0.0.1:8080", "127.0.0.1:8080", FALSE, TRUE },
  { "http://broker:8080", "broker:8080", TRUE, FALSE },    /* scheme differs */
  { "https://broker:8080", "broker:8080", FALSE, FALSE },
  { "http://evil:8080", "broker:8080", FALSE, FALSE },
  { "http://broker:8081", "broker:8080", FALSE, FALSE },
  { "http://broker", "broker:8080", FALSE, FALSE },
  { "http://broker.evil:8080", "broker:8080", FALSE, FALSE },
  { "http://broker:8080/", "broker:8080", FALSE, FALSE },
  { "http://user@broker:8080", "broker:8080", FALSE, FALSE },
  { "null", "broker:8080", FALSE, FALSE },
  { "", "broker:8080", FALSE, FALSE },
  { NULL, "broker:8080", FALSE, FALSE },
  { "http://broker:8080", NULL, FALSE, FALSE },
  { "http://broker:99999", "broker:99999", FALSE, FALSE },
  { "http://broker:", "broker:", FALSE, FALSE },
  { "http://[::1]:8080", "[::2]:8080", FALSE, FALSE },
  { "file://", "broker", FALSE, FALSE },
};

static void
test_origin (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (origin_cases); i++)
    {
      const OriginCase *c = &origin_cases[i];
      gboolean allowed = kd_gateway_origin_allowed (c->origin, c->host, c->tls);
      if (allowed != c->allowed)
        g_error ("origin '%s' host '%s' tls %d: expected %s", c->origin, c->host, c->tls,
                 c->allowed ? "allowed" : "refused");
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gateway/ws/accept-key-rfc6455", test_accept_key);
  for (guint i = 0; i < G_N_ELEMENTS (request_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/gateway/ws/request/%s", request_cases[i].name);
      g_test_add_data_func (path, &request_cases[i], test_request);
    }
  g_test_add_func ("/gateway/ws/origin", test_origin);
  return g_test_run ();
}
