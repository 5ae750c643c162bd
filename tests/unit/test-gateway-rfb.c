/*
 * test-gateway-rfb.c: the RFB security handshake termination, driven with
 * scripted bytes from a "VNC server" and a "browser": None, VNC
 * authentication (the DES answer computed here independently), refusal
 * with a reason, garbage versions, browsers at 3.3/3.7/3.8, pass-through.
 */
#include "gateway/kd-gateway-priv.h"

#include <nettle/des.h>
#include <string.h>

static const guint8 CHALLENGE[16] = {
  0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
  0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};

static void
feed_server (KdGatewayRfb *rfb, const void *data, gsize len)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (kd_gateway_rfb_feed_server (rfb, data, len, &error));
  g_assert_no_error (error);
}

static void
feed_client (KdGatewayRfb *rfb, const void *data, gsize len)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (kd_gateway_rfb_feed_client (rfb, data, len, &error));
  g_assert_no_error (error);
}

static void
expect_bytes (GBytes *got, const void *want, gsize want_len)
{
  if (want_len == 0)
    {
      g_assert_null (got);
      return;
    }
  g_assert_nonnull (got);
  g_assert_cmpmem (g_bytes_get_data (got, NULL), g_bytes_get_size (got), want, want_len);
  g_bytes_unref (got);
}

#define EXPECT_TO_SERVER(rfb, lit) expect_bytes (kd_gateway_rfb_take_to_server (rfb), lit, sizeof (lit) - 1)
#define EXPECT_TO_CLIENT(rfb, lit) expect_bytes (kd_gateway_rfb_take_to_client (rfb), lit, sizeof (lit) - 1)
#define FEED_SERVER(rfb, lit) feed_server (rfb, lit, sizeof (lit) - 1)
#define FEED_CLIENT(rfb, lit) feed_client (rfb, lit, sizeof (lit) - 1)

/* The browser side up to its choice, at 3.8. */
static void
client_38_choose_none (KdGatewayRfb *rfb)
{
  EXPECT_TO_CLIENT (rfb, "RFB 003.008\n");
  FEED_CLIENT (rfb, "RFB 003.008\n");
  EXPECT_TO_CLIENT (rfb, "\x01\x01");        /* one type: None */
  FEED_CLIENT (rfb, "\x01");
  g_assert_null (kd_gateway_rfb_take_to_client (rfb));   /* held until the desktop accepts */
}

static void
test_server_none (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new ("unused");

  client_38_choose_none (rfb);
  FEED_SERVER (rfb, "RFB 003.008\n");
  EXPECT_TO_SERVER (rfb, "RFB 003.008\n");
  FEED_SERVER (rfb, "\x02\x02\x01");          /* VNC auth and None: None wins */
  EXPECT_TO_SERVER (rfb, "\x01");
  g_assert_false (kd_gateway_rfb_is_done (rfb));
  FEED_SERVER (rfb, "\x00\x00\x00\x00");      /* SecurityResult OK */
  g_assert_true (kd_gateway_rfb_is_done (rfb));
  g_assert_cmpuint (kd_gateway_rfb_server_security_type (rfb), ==, 1);
  EXPECT_TO_CLIENT (rfb, "\x00\x00\x00\x00");

  /* from now on: pass-through both ways (ClientInit, ServerInit, ...) */
  FEED_CLIENT (rfb, "\x01");
  EXPECT_TO_SERVER (rfb, "\x01");
  FEED_SERVER (rfb, "SERVERINIT");
  EXPECT_TO_CLIENT (rfb, "SERVERINIT");
}

/* Same as VNC does it, written here without the gateway's helper. */
static void
expected_vnc_response (const char *password, guint8 out[16])
{
  guint8 key[8] = { 0 };
  struct des_ctx ctx;

  memcpy (key, password, MIN (strlen (password), 8));
  for (int i = 0; i < 8; i++)
    {
      guint8 b = key[i], r = 0;
      for (int bit = 0; bit < 8; bit++)
        if (b & (1 << bit))
          r |= 0x80 >> bit;
      key[i] = r;
    }
  des_set_key (&ctx, key);
  des_encrypt (&ctx, 8, out, CHALLENGE);
  des_encrypt (&ctx, 8, out + 8, CHALLENGE + 8);
}

static void
test_server_vnc_auth (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new ("s3cretPW-longer-than-8");
  guint8 want[16];
  g_autoptr(GBytes) got = NULL;

  client_38_choose_none (rfb);
  FEED_SERVER (rfb, "RFB 003.008\n");
  EXPECT_TO_SERVER (rfb, "RFB 003.008\n");
  FEED_SERVER (rfb, "\x01\x02");              /* only VNC authentication */
  EXPECT_TO_SERVER (rfb, "\x02");
  feed_server (rfb, CHALLENGE, sizeof CHALLENGE);
  got = kd_gateway_rfb_take_to_server (rfb);
  expected_vnc_response ("s3cretPW", want);
  g_assert_cmpmem (g_bytes_get_data (got, NULL), g_bytes_get_size (got), want, sizeof want);
  /* a known-answer check of the helper on its own, too */
  {
    guint8 mine[16];
    kd_gateway_rfb_vnc_auth_response ("s3cretPW", CHALLENGE, mine);
    g_assert_cmpmem (mine, 16, want, 16);
    kd_gateway_rfb_vnc_auth_response ("s3cretPX", CHALLENGE, mine);
    g_assert_true (memcmp (mine, want, 16) != 0);
  }
  g_assert_false (kd_gateway_rfb_is_done (rfb));
  FEED_SERVER (rfb, "\x00\x00\x00\x00");
  g_assert_true (kd_gateway_rfb_is_done (rfb));
  g_assert_cmpuint (kd_gateway_rfb_server_security_type (rfb), ==, 2);
  EXPECT_TO_CLIENT (rfb, "\x00\x00\x00\x00");
}

static void
test_server_vnc_auth_no_password (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);
  g_autoptr(GError) error = NULL;

  FEED_SERVER (rfb, "RFB 003.008\n");
  g_assert_false (kd_gateway_rfb_feed_server (rfb, (const guint8 *) "\x02\x02\x10", 3, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "offered: 2, 16"));
}

static void
test_server_auth_failed (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new ("wrong");
  g_autoptr(GError) error = NULL;
  static const guint8 failure[] = "\x00\x00\x00\x01" "\x00\x00\x00\x15" "Authentication failed";
  g_autoptr(GBytes) to_client = NULL;
  const guint8 *data;
  gsize len;

  client_38_choose_none (rfb);
  FEED_SERVER (rfb, "RFB 003.008\n");
  FEED_SERVER (rfb, "\x01\x02");
  feed_server (rfb, CHALLENGE, 16);
  g_assert_false (kd_gateway_rfb_feed_server (rfb, failure, sizeof failure - 1, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_AUTH_FAILED);
  g_assert_nonnull (strstr (error->message, "'Authentication failed'"));
  g_assert_false (kd_gateway_rfb_is_done (rfb));

  /* the browser gets a failed SecurityResult with a reason of ours */
  to_client = kd_gateway_rfb_take_to_client (rfb);
  g_assert_nonnull (to_client);
  data = g_bytes_get_data (to_client, &len);
  g_assert_cmpuint (len, >, 8);
  g_assert_cmpmem (data, 4, "\x00\x00\x00\x01", 4);
  g_assert_cmpuint (((guint32) data[4] << 24 | data[5] << 16 | data[6] << 8 | data[7]), ==, len - 8);

  /* nothing more is accepted */
  g_clear_error (&error);
  g_assert_false (kd_gateway_rfb_feed_client (rfb, (const guint8 *) "x", 1, &error));
}

static void
test_server_refuses_with_reason_bounded (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);
  g_autoptr(GError) error = NULL;

  FEED_SERVER (rfb, "RFB 003.008\n");
  /* no types, and a reason of 1 GiB: refused before reading it */
  g_assert_false (kd_gateway_rfb_feed_server (rfb, (const guint8 *) "\x00\x40\x00\x00\x00", 5, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "limit"));
}

static void
test_server_no_types_reason (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);
  g_autoptr(GError) error = NULL;
  static const guint8 msg[] = "\x00" "\x00\x00\x00\x0a" "too\x01many\n!";

  FEED_SERVER (rfb, "RFB 003.008\n");
  g_assert_false (kd_gateway_rfb_feed_server (rfb, msg, sizeof msg - 1, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "'too many !'"));   /* control bytes made spaces */
}

static void
test_garbage_version (void)
{
  const char *garbage[] = { "HTTP/1.1 400", "RFB 004.000\n", "RFB 003.00x\n", "RFB 003.008\r", NULL };

  for (guint i = 0; garbage[i]; i++)
    {
      g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);
      g_autoptr(GError) error = NULL;
      g_assert_false (kd_gateway_rfb_feed_server (rfb, (const guint8 *) garbage[i], 12, &error));
      g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL);
      g_test_message ("%s", error->message);
    }
  for (guint i = 0; garbage[i]; i++)
    {
      g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);
      g_autoptr(GError) error = NULL;
      g_assert_false (kd_gateway_rfb_feed_client (rfb, (const guint8 *) garbage[i], 12, &error));
      g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL);
    }
  {
    /* a client at 3.5 is refused too */
    g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);
    g_autoptr(GError) error = NULL;
    g_assert_false (kd_gateway_rfb_feed_client (rfb, (const guint8 *) "RFB 003.005\n", 12, &error));
    g_assert_nonnull (strstr (error->message, "'RFB 003.005\\x0a'"));
  }
}

static void
test_pending_bounded (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *junk = g_malloc0 (KD_GATEWAY_RFB_MAX_PENDING + 1);

  FEED_CLIENT (rfb, "RFB 003.008\n");
  FEED_CLIENT (rfb, "\x01");
  /* while the desktop is not ready, the browser cannot make us buffer much */
  g_assert_false (kd_gateway_rfb_feed_client (rfb, junk, KD_GATEWAY_RFB_MAX_PENDING + 1, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL);
}

static void
test_client_33 (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);

  EXPECT_TO_CLIENT (rfb, "RFB 003.008\n");
  FEED_CLIENT (rfb, "RFB 003.003\n");
  g_assert_null (kd_gateway_rfb_take_to_client (rfb));   /* 3.3: the server picks, later */
  FEED_SERVER (rfb, "RFB 003.008\n" "\x01\x01" "\x00\x00\x00\x00");
  EXPECT_TO_SERVER (rfb, "RFB 003.008\n" "\x01");
  g_assert_true (kd_gateway_rfb_is_done (rfb));
  g_assert_cmpint (kd_gateway_rfb_client_minor (rfb), ==, 3);
  EXPECT_TO_CLIENT (rfb, "\x00\x00\x00\x01");   /* u32 security type None, no result */
}

static void
test_client_37 (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);

  EXPECT_TO_CLIENT (rfb, "RFB 003.008\n");
  FEED_CLIENT (rfb, "RFB 003.007\n");
  EXPECT_TO_CLIENT (rfb, "\x01\x01");
  /* the choice and ClientInit together, before the desktop is ready */
  FEED_CLIENT (rfb, "\x01\x01");
  g_assert_false (kd_gateway_rfb_is_done (rfb));
  FEED_SERVER (rfb, "RFB 003.008\n" "\x01\x01" "\x00\x00\x00\x00");
  g_assert_true (kd_gateway_rfb_is_done (rfb));
  EXPECT_TO_SERVER (rfb, "RFB 003.008\n" "\x01" "\x01");   /* ... ClientInit passed on */
  g_assert_null (kd_gateway_rfb_take_to_client (rfb));      /* 3.7 + None: no SecurityResult */
}

static void
test_client_bad_choice (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new (NULL);
  g_autoptr(GError) error = NULL;

  FEED_CLIENT (rfb, "RFB 003.008\n");
  g_clear_pointer (&(GBytes *){ kd_gateway_rfb_take_to_client (rfb) }, g_bytes_unref);
  g_assert_false (kd_gateway_rfb_feed_client (rfb, (const guint8 *) "\x02", 1, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL);
  EXPECT_TO_CLIENT (rfb, "\x00\x00\x00\x01" "\x00\x00\x00\x26" "only security type None (1) is offered");
}

static void
test_server_33_vnc_auth (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new ("pw");
  guint8 want[16];

  client_38_choose_none (rfb);
  FEED_SERVER (rfb, "RFB 003.003\n");
  EXPECT_TO_SERVER (rfb, "RFB 003.003\n");
  FEED_SERVER (rfb, "\x00\x00\x00\x02");
  g_assert_null (kd_gateway_rfb_take_to_server (rfb));   /* 3.3: no choice byte */
  feed_server (rfb, CHALLENGE, 16);
  expected_vnc_response ("pw", want);
  expect_bytes (kd_gateway_rfb_take_to_server (rfb), want, 16);
  FEED_SERVER (rfb, "\x00\x00\x00\x00");
  g_assert_true (kd_gateway_rfb_is_done (rfb));
}

/* Every byte on its own: the parser must not depend on how reads split. */
static void
test_byte_at_a_time (void)
{
  g_autoptr(KdGatewayRfb) rfb = kd_gateway_rfb_new ("pw");
  static const char server[] = "RFB 003.008\n" "\x01\x02";
  static const char client[] = "RFB 003.008\n" "\x01";

  for (gsize i = 0; i < sizeof client - 1; i++)
    feed_client (rfb, client + i, 1);
  for (gsize i = 0; i < sizeof server - 1; i++)
    feed_server (rfb, server + i, 1);
  for (gsize i = 0; i < 16; i++)
    feed_server (rfb, CHALLENGE + i, 1);
  for (gsize i = 0; i < 4; i++)
    {
      g_assert_false (kd_gateway_rfb_is_done (rfb));
      feed_server (rfb, "\x00", 1);
    }
  g_assert_true (kd_gateway_rfb_is_done (rfb));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gateway/rfb/server-none", test_server_none);
  g_test_add_func ("/gateway/rfb/server-vnc-auth", test_server_vnc_auth);
  g_test_add_func ("/gateway/rfb/server-vnc-auth-no-password", test_server_vnc_auth_no_password);
  g_test_add_func ("/gateway/rfb/server-auth-failed-reason", test_server_auth_failed);
  g_test_add_func ("/gateway/rfb/server-reason-bounded", test_server_refuses_with_reason_bounded);
  g_test_add_func ("/gateway/rfb/server-no-types-reason", test_server_no_types_reason);
  g_test_add_func ("/gateway/rfb/server-33-vnc-auth", test_server_33_vnc_auth);
  g_test_add_func ("/gateway/rfb/garbage-version", test_garbage_version);
  g_test_add_func ("/gateway/rfb/pending-bounded", test_pending_bounded);
  g_test_add_func ("/gateway/rfb/client-33", test_client_33);
  g_test_add_func ("/gateway/rfb/client-37", test_client_37);
  g_test_add_func ("/gateway/rfb/client-bad-choice", test_client_bad_choice);
  g_test_add_func ("/gateway/rfb/byte-at-a-time", test_byte_at_a_time);
  return g_test_run ();
}
