/*
 * test-gateway-ticket.c: console tickets: one use, 30 s on a test clock,
 * forged and malformed tickets, the ids a ticket is bound to, the bound.
 */
#include "gateway/kd-gateway.h"

#include <string.h>

#define T0 ((gint64) 1700000000 * G_USEC_PER_SEC)

static void
test_issue_redeem (void)
{
  g_autoptr(KdGatewayTickets) tickets = kd_gateway_tickets_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *t1 = kd_gateway_ticket_issue (tickets, 7, 42, T0, &error);
  g_autofree char *t2 = NULL;
  gint64 user = 0, desktop = 0;

  g_assert_no_error (error);
  g_assert_cmpuint (strlen (t1), ==, 43);
  for (const char *p = t1; *p; p++)
    g_assert_true (g_ascii_isalnum (*p) || *p == '-' || *p == '_');
  t2 = kd_gateway_ticket_issue (tickets, 8, 43, T0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (t1, !=, t2);

  g_assert_true (kd_gateway_ticket_redeem (tickets, t2, T0 + 1, &user, &desktop, &error));
  g_assert_no_error (error);
  g_assert_cmpint (user, ==, 8);
  g_assert_cmpint (desktop, ==, 43);
  g_assert_true (kd_gateway_ticket_redeem (tickets, t1, T0 + 1, &user, &desktop, &error));
  g_assert_cmpint (user, ==, 7);
  g_assert_cmpint (desktop, ==, 42);
}

static void
test_reuse (void)
{
  g_autoptr(KdGatewayTickets) tickets = kd_gateway_tickets_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *t = kd_gateway_ticket_issue (tickets, 1, 2, T0, NULL);
  gint64 user = -1, desktop = -1;

  g_assert_true (kd_gateway_ticket_redeem (tickets, t, T0, NULL, NULL, &error));
  g_assert_false (kd_gateway_ticket_redeem (tickets, t, T0 + 1, &user, &desktop, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_USED);
  g_assert_nonnull (strstr (error->message, "already used"));
  g_assert_cmpint (user, ==, -1);   /* outputs untouched on failure */
  g_assert_cmpint (desktop, ==, -1);
}

static void
test_expiry (void)
{
  g_autoptr(KdGatewayTickets) tickets = kd_gateway_tickets_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *a = kd_gateway_ticket_issue (tickets, 1, 2, T0, NULL);
  g_autofree char *b = kd_gateway_ticket_issue (tickets, 1, 2, T0, NULL);
  gint64 ttl = (gint64) KD_GATEWAY_TICKET_TTL_SEC * G_USEC_PER_SEC;

  g_assert_cmpint (KD_GATEWAY_TICKET_TTL_SEC, ==, 30);
  /* one microsecond before 30 s: still good */
  g_assert_true (kd_gateway_ticket_redeem (tickets, a, T0 + ttl - 1, NULL, NULL, &error));
  g_assert_no_error (error);
  /* at exactly 30 s: expired, and spent */
  g_assert_false (kd_gateway_ticket_redeem (tickets, b, T0 + ttl, NULL, NULL, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_EXPIRED);
  g_assert_nonnull (strstr (error->message, "30 seconds"));
  g_clear_error (&error);
  g_assert_false (kd_gateway_ticket_redeem (tickets, b, T0, NULL, NULL, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_UNKNOWN);
}

static void
test_forged (void)
{
  g_autoptr(KdGatewayTickets) tickets = kd_gateway_tickets_new ();
  g_autofree char *t = kd_gateway_ticket_issue (tickets, 1, 2, T0, NULL);
  g_autofree char *forged = g_strdup (t);
  const char *malformed[] = { "", "abc", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
                              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" /* 44 */,
                              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", NULL };

  forged[0] = forged[0] == 'A' ? 'B' : 'A';
  {
    g_autoptr(GError) error = NULL;
    g_assert_false (kd_gateway_ticket_redeem (tickets, forged, T0, NULL, NULL, &error));
    g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_UNKNOWN);
  }
  for (guint i = 0; malformed[i]; i++)
    {
      g_autoptr(GError) error = NULL;
      g_assert_false (kd_gateway_ticket_redeem (tickets, malformed[i], T0, NULL, NULL, &error));
      g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_MALFORMED);
    }
  {
    g_autoptr(GError) error = NULL;
    g_assert_false (kd_gateway_ticket_redeem (tickets, NULL, T0, NULL, NULL, &error));
    g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_MALFORMED);
  }
  /* the real one still works after all that */
  g_assert_true (kd_gateway_ticket_redeem (tickets, t, T0, NULL, NULL, NULL));
}

/* The store returns the ids a ticket was bound to; a ticket for another
 * desktop gives that desktop's id, which the caller must compare. */
static void
test_wrong_desktop (void)
{
  g_autoptr(KdGatewayTickets) tickets = kd_gateway_tickets_new ();
  g_autofree char *mine = kd_gateway_ticket_issue (tickets, 1, 100, T0, NULL);
  g_autofree char *other = kd_gateway_ticket_issue (tickets, 2, 200, T0, NULL);
  gint64 user = 0, desktop = 0;

  g_assert_true (kd_gateway_ticket_redeem (tickets, other, T0, &user, &desktop, NULL));
  g_assert_cmpint (user, ==, 2);
  g_assert_cmpint (desktop, ==, 200);
  g_assert_true (kd_gateway_ticket_redeem (tickets, mine, T0, &user, &desktop, NULL));
  g_assert_cmpint (user, ==, 1);
  g_assert_cmpint (desktop, ==, 100);
}

static void
test_bounded (void)
{
  g_autoptr(KdGatewayTickets) tickets = kd_gateway_tickets_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *last = NULL;
  gint64 ttl = (gint64) KD_GATEWAY_TICKET_TTL_SEC * G_USEC_PER_SEC;

  for (guint i = 0; i < KD_GATEWAY_TICKET_MAX_LIVE; i++)
    g_free (kd_gateway_ticket_issue (tickets, 1, 1, T0, &error));
  g_assert_no_error (error);
  g_assert_null (kd_gateway_ticket_issue (tickets, 1, 1, T0 + 1, &error));
  g_assert_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TOO_MANY_TICKETS);
  g_clear_error (&error);
  /* 30 s later they are all purged */
  last = kd_gateway_ticket_issue (tickets, 1, 1, T0 + ttl, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (kd_gateway_tickets_count (tickets), ==, 1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gateway/ticket/issue-redeem", test_issue_redeem);
  g_test_add_func ("/gateway/ticket/reuse-refused", test_reuse);
  g_test_add_func ("/gateway/ticket/expiry-at-30s", test_expiry);
  g_test_add_func ("/gateway/ticket/forged-malformed", test_forged);
  g_test_add_func ("/gateway/ticket/bound-ids", test_wrong_desktop);
  g_test_add_func ("/gateway/ticket/store-bounded", test_bounded);
  return g_test_run ();
}
