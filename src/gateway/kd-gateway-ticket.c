/*
 * kd-gateway-ticket.c: console tickets. A ticket is 32 random bytes
 * (URL-safe base64), bound to one user and one desktop, valid for
 * KD_GATEWAY_TICKET_TTL_SEC and redeemable once. The broker issues one
 * when a user asks to open a console and redeems it when the WebSocket
 * arrives, before any byte goes to the desktop.
 *
 * The store keys tickets by a BLAKE2b hash of the ticket so that a lookup's
 * timing says nothing about the secret; the stored hash is then compared
 * in constant time. Redeemed tickets stay as "used" tombstones until their
 * expiry so a replay gets a clear error. Time is passed in (µs), so tests
 * use their own clock. The store is bounded: expired entries are purged
 * on every issue, and issuing fails when KD_GATEWAY_TICKET_MAX_LIVE remain.
 */
#include "gateway/kd-gateway.h"

#include <sodium.h>
#include <string.h>

#define TICKET_HASH_BYTES 32
#define TICKET_TTL_USEC   ((gint64) KD_GATEWAY_TICKET_TTL_SEC * G_USEC_PER_SEC)

typedef struct {
  guint8   hash[TICKET_HASH_BYTES];
  gint64   user_id;
  gint64   desktop_id;
  gint64   expires_usec;   /* invalid from this instant on */
  gboolean used;
} KdTicketEntry;

struct _KdGatewayTickets {
  GHashTable *entries;     /* hex of hash -> KdTicketEntry */
};

static gboolean
ensure_sodium (void)
{
  static gsize done = 0;
  static gboolean ok = FALSE;

  if (g_once_init_enter (&done))
    {
      ok = sodium_init () >= 0;
      g_once_init_leave (&done, 1);
    }
  return ok;
}

/**
 * kd_gateway_tickets_new:
 *
 * Returns: (transfer full): an empty ticket store.
 */
KdGatewayTickets *
kd_gateway_tickets_new (void)
{
  KdGatewayTickets *tickets = g_new0 (KdGatewayTickets, 1);

  tickets->entries = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return tickets;
}

void
kd_gateway_tickets_free (KdGatewayTickets *tickets)
{
  if (tickets == NULL)
    return;
  g_hash_table_destroy (tickets->entries);
  g_free (tickets);
}

/**
 * kd_gateway_tickets_count:
 *
 * Returns: how many entries (live and used-but-not-expired) are kept.
 */
guint
kd_gateway_tickets_count (KdGatewayTickets *tickets)
{
  return g_hash_table_size (tickets->entries);
}

static void
ticket_hash (const char *ticket, guint8 hash[TICKET_HASH_BYTES], char hex[TICKET_HASH_BYTES * 2 + 1])
{
  crypto_generichash (hash, TICKET_HASH_BYTES, (const guint8 *) ticket, strlen (ticket), NULL, 0);
  sodium_bin2hex (hex, TICKET_HASH_BYTES * 2 + 1, hash, TICKET_HASH_BYTES);
}

static void
purge_expired (KdGatewayTickets *tickets, gint64 now_usec)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, tickets->entries);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      KdTicketEntry *entry = value;
      if (now_usec >= entry->expires_usec)
        g_hash_table_iter_remove (&iter);
    }
}

/**
 * kd_gateway_ticket_issue:
 * @tickets: the store
 * @user_id: who may redeem it
 * @desktop_id: the desktop it opens
 * @now_usec: the current time (µs, any clock the caller uses consistently)
 * @error: return location for a #GError
 *
 * Issues a one-time ticket valid for KD_GATEWAY_TICKET_TTL_SEC.
 *
 * Returns: (transfer full): the ticket (43 URL-safe characters), or %NULL
 *   with KD_GATEWAY_ERROR_TOO_MANY_TICKETS when the store is full.
 */
char *
kd_gateway_ticket_issue (KdGatewayTickets *tickets,
                         gint64            user_id,
                         gint64            desktop_id,
                         gint64            now_usec,
                         GError          **error)
{
  guint8 random[KD_GATEWAY_TICKET_RANDOM_BYTES];
  char encoded[sodium_base64_ENCODED_LEN (KD_GATEWAY_TICKET_RANDOM_BYTES,
                                          sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  char hex[TICKET_HASH_BYTES * 2 + 1];
  KdTicketEntry *entry;

  g_return_val_if_fail (tickets != NULL, NULL);

  if (!ensure_sodium ())
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_FAILED,
                   "cannot issue a console ticket: libsodium failed to initialise");
      return NULL;
    }

  purge_expired (tickets, now_usec);
  if (g_hash_table_size (tickets->entries) >= KD_GATEWAY_TICKET_MAX_LIVE)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TOO_MANY_TICKETS,
                   "too many console tickets outstanding (%u, the limit); try again in %d seconds",
                   g_hash_table_size (tickets->entries), KD_GATEWAY_TICKET_TTL_SEC);
      return NULL;
    }

  randombytes_buf (random, sizeof random);
  sodium_bin2base64 (encoded, sizeof encoded, random, sizeof random,
                     sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero (random, sizeof random);

  entry = g_new0 (KdTicketEntry, 1);
  ticket_hash (encoded, entry->hash, hex);
  entry->user_id = user_id;
  entry->desktop_id = desktop_id;
  entry->expires_usec = now_usec + TICKET_TTL_USEC;
  g_hash_table_replace (tickets->entries, g_strdup (hex), entry);

  return g_strdup (encoded);
}

static gboolean
ticket_well_formed (const char *ticket)
{
  gsize expected = sodium_base64_ENCODED_LEN (KD_GATEWAY_TICKET_RANDOM_BYTES,
                                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1;
  gsize i;

  for (i = 0; ticket[i] != '\0'; i++)
    {
      char c = ticket[i];
      if (i >= expected)
        return FALSE;
      if (!(g_ascii_isalnum (c) || c == '-' || c == '_'))
        return FALSE;
    }
  return i == expected;
}

/**
 * kd_gateway_ticket_redeem:
 * @tickets: the store
 * @ticket: the ticket as the browser sent it (untrusted)
 * @now_usec: the current time, same clock as at issue
 * @out_user_id: (out) (optional): the user it was issued to
 * @out_desktop_id: (out) (optional): the desktop it opens
 * @error: return location for a #GError
 *
 * Redeems a ticket once. A ticket that is found is spent by this call
 * whether it succeeds or has expired. The caller must still check that the
 * user and desktop returned are the ones it expects.
 *
 * Returns: %TRUE and the ids, or %FALSE with KD_GATEWAY_ERROR_TICKET_*.
 */
gboolean
kd_gateway_ticket_redeem (KdGatewayTickets *tickets,
                          const char       *ticket,
                          gint64            now_usec,
                          gint64           *out_user_id,
                          gint64           *out_desktop_id,
                          GError          **error)
{
  guint8 hash[TICKET_HASH_BYTES];
  char hex[TICKET_HASH_BYTES * 2 + 1];
  KdTicketEntry *entry;

  g_return_val_if_fail (tickets != NULL, FALSE);

  if (ticket == NULL || !ticket_well_formed (ticket))
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_MALFORMED,
                   "the console ticket is malformed (expected %d URL-safe base64 characters)",
                   (int) sodium_base64_ENCODED_LEN (KD_GATEWAY_TICKET_RANDOM_BYTES,
                                                    sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1);
      return FALSE;
    }
  if (!ensure_sodium ())
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_FAILED,
                   "cannot check the console ticket: libsodium failed to initialise");
      return FALSE;
    }

  ticket_hash (ticket, hash, hex);
  entry = g_hash_table_lookup (tickets->entries, hex);
  if (entry == NULL || sodium_memcmp (entry->hash, hash, TICKET_HASH_BYTES) != 0)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_UNKNOWN,
                   "the console ticket is unknown: it was never issued or expired long ago");
      return FALSE;
    }
  if (now_usec >= entry->expires_usec)
    {
      g_hash_table_remove (tickets->entries, hex);
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_EXPIRED,
                   "the console ticket has expired (tickets are valid for %d seconds)",
                   KD_GATEWAY_TICKET_TTL_SEC);
      return FALSE;
    }
  if (entry->used)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_TICKET_USED,
                   "the console ticket was already used; ask for a new one");
      return FALSE;
    }

  entry->used = TRUE;
  if (out_user_id != NULL)
    *out_user_id = entry->user_id;
  if (out_desktop_id != NULL)
    *out_desktop_id = entry->desktop_id;
  return TRUE;
}
