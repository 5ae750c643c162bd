/*
 * kd-gateway-rfb.c: terminates the RFB (VNC) security handshake on both
 * sides of the gateway (RFC 6143 sections 7.1.1-7.1.3).
 *
 * Toward the VNC server we are a client: we read its version, answer with
 * the highest we share (3.8, 3.7 or 3.3), choose None when offered, else
 * VNC authentication with the desktop's password, and read SecurityResult.
 * Toward the browser we are a server that offers only None, so the VNC
 * password never leaves the broker. The browser's final step (3.3: the
 * security type; 3.8: SecurityResult) is held back until the VNC server has
 * accepted us, so a refusal reaches the browser as an RFB failure reason.
 *
 * This is a pure state machine: no I/O, fed bytes, producing bytes. Every
 * read is bounded (version 12 bytes, reason KD_GATEWAY_RFB_MAX_REASON_BYTES,
 * unconsumed input KD_GATEWAY_RFB_MAX_PENDING). ClientInit and ServerInit
 * are not looked at: once both sides are done, bytes pass through.
 */
#include "gateway/kd-gateway-priv.h"

#include <nettle/des.h>
#include <sodium.h>
#include <string.h>

#define RFB_SEC_INVALID 0
#define RFB_SEC_NONE    1
#define RFB_SEC_VNC     2

typedef enum {
  SRV_VERSION,
  SRV_TYPE_33,       /* 3.3: the server picks, as a u32 */
  SRV_TYPES_COUNT,   /* 3.7+: a count then that many types */
  SRV_TYPES_LIST,
  SRV_CHALLENGE,
  SRV_RESULT,
  SRV_REASON_LEN,
  SRV_REASON,
  SRV_DONE,
  SRV_FAILED,
} SrvState;

typedef enum {
  CLI_VERSION,
  CLI_CHOICE,
  CLI_WAIT_SERVER,   /* the browser is through; waits for the VNC side */
  CLI_DONE,
  CLI_FAILED,
} CliState;

typedef enum {
  REASON_NONE,
  REASON_TYPES,      /* the server offered no type: why */
  REASON_RESULT,     /* the server refused us: why */
} ReasonFor;

struct _KdGatewayRfb {
  char       *password;
  GByteArray *srv_in;
  GByteArray *cli_in;
  GByteArray *to_srv;
  GByteArray *to_cli;
  SrvState    srv_state;
  CliState    cli_state;
  int         srv_minor;
  int         cli_minor;
  guint8      srv_type;
  guint8      types_count;
  guint32     reason_len;
  ReasonFor   reason_for;
};

/**
 * kd_gateway_rfb_new:
 * @vnc_password: (nullable): the VNC password of the desktop, used only if
 *   the server does not offer None
 *
 * Returns: (transfer full): a handshake whose first output to the browser
 *   (our version) is already queued.
 */
KdGatewayRfb *
kd_gateway_rfb_new (const char *vnc_password)
{
  KdGatewayRfb *rfb = g_new0 (KdGatewayRfb, 1);

  rfb->password = g_strdup (vnc_password);
  rfb->srv_in = g_byte_array_new ();
  rfb->cli_in = g_byte_array_new ();
  rfb->to_srv = g_byte_array_new ();
  rfb->to_cli = g_byte_array_new ();
  g_byte_array_append (rfb->to_cli, (const guint8 *) "RFB 003.008\n", KD_GATEWAY_RFB_VERSION_BYTES);
  return rfb;
}

void
kd_gateway_rfb_free (KdGatewayRfb *rfb)
{
  if (rfb == NULL)
    return;
  if (rfb->password != NULL)
    {
      sodium_memzero (rfb->password, strlen (rfb->password));
      g_free (rfb->password);
    }
  g_byte_array_unref (rfb->srv_in);
  g_byte_array_unref (rfb->cli_in);
  g_byte_array_unref (rfb->to_srv);
  g_byte_array_unref (rfb->to_cli);
  g_free (rfb);
}

static guint8
reverse_bits (guint8 b)
{
  b = (b & 0xF0) >> 4 | (b & 0x0F) << 4;
  b = (b & 0xCC) >> 2 | (b & 0x33) << 2;
  b = (b & 0xAA) >> 1 | (b & 0x55) << 1;
  return b;
}

void
kd_gateway_rfb_vnc_auth_response (const char   *password,
                                  const guint8  challenge[16],
                                  guint8        response[16])
{
  guint8 key[8] = { 0 };
  struct des_ctx ctx;
  gsize n = password ? MIN (strlen (password), sizeof key) : 0;

  memcpy (key, password, n);
  for (gsize i = 0; i < sizeof key; i++)
    key[i] = reverse_bits (key[i]);
  /* weak keys (an empty password) are fine for VNC: nettle still sets them */
  (void) des_set_key (&ctx, key);
  des_encrypt (&ctx, 16, response, challenge);
  sodium_memzero (key, sizeof key);
  sodium_memzero (&ctx, sizeof ctx);
}

static guint32
read_u32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

static void
append_u32 (GByteArray *out, guint32 v)
{
  guint8 b[4] = { v >> 24, v >> 16, v >> 8, v };
  g_byte_array_append (out, b, 4);
}

static void
consume (GByteArray *in, guint n)
{
  g_byte_array_remove_range (in, 0, n);
}

/* A reason from the wire, made fit to quote: valid UTF-8, no controls. */
static char *
printable_reason (const guint8 *data, gsize len)
{
  g_autofree char *valid = g_utf8_make_valid ((const char *) data, len);

  for (char *p = valid; *p; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      *p = ' ';
  g_strstrip (valid);
  return g_steal_pointer (&valid);
}

/* Parses "RFB 003.00x\n"; returns the minor version or -1. */
static int
parse_version (const guint8 *p, int *out_major)
{
  int major, minor;

  if (memcmp (p, "RFB ", 4) != 0 || p[7] != '.' || p[11] != '\n')
    return -1;
  for (int i = 4; i < 11; i++)
    if (i != 7 && !g_ascii_isdigit (p[i]))
      return -1;
  major = (p[4] - '0') * 100 + (p[5] - '0') * 10 + (p[6] - '0');
  minor = (p[8] - '0') * 100 + (p[9] - '0') * 10 + (p[10] - '0');
  *out_major = major;
  return minor;
}

static char *
quote_version (const guint8 *p)
{
  GString *s = g_string_new (NULL);

  for (int i = 0; i < KD_GATEWAY_RFB_VERSION_BYTES; i++)
    {
      if (p[i] >= 0x20 && p[i] < 0x7f)
        g_string_append_c (s, p[i]);
      else
        g_string_append_printf (s, "\\x%02x", p[i]);
    }
  return g_string_free (s, FALSE);
}

/* Tells the browser the desktop refused us, where its protocol allows. */
static void
fail_client (KdGatewayRfb *rfb, const char *why)
{
  gsize len = strlen (why);

  if (rfb->cli_state == CLI_WAIT_SERVER && rfb->cli_minor == 8)
    {
      append_u32 (rfb->to_cli, 1);
      append_u32 (rfb->to_cli, len);
      g_byte_array_append (rfb->to_cli, (const guint8 *) why, len);
    }
  else if (rfb->cli_state == CLI_WAIT_SERVER && rfb->cli_minor == 3)
    {
      append_u32 (rfb->to_cli, RFB_SEC_INVALID);
      append_u32 (rfb->to_cli, len);
      g_byte_array_append (rfb->to_cli, (const guint8 *) why, len);
    }
  rfb->cli_state = CLI_FAILED;
}

/* Both sides through: the browser's last step, then pass-through. */
static void
maybe_finish (KdGatewayRfb *rfb)
{
  if (rfb->srv_state != SRV_DONE || rfb->cli_state != CLI_WAIT_SERVER)
    return;

  if (rfb->cli_minor == 3)
    append_u32 (rfb->to_cli, RFB_SEC_NONE);
  else if (rfb->cli_minor == 8)
    append_u32 (rfb->to_cli, 0);   /* SecurityResult OK; 3.7 has none for None */
  rfb->cli_state = CLI_DONE;

  /* anything that arrived early belongs to the other side now */
  g_byte_array_append (rfb->to_cli, rfb->srv_in->data, rfb->srv_in->len);
  g_byte_array_set_size (rfb->srv_in, 0);
  g_byte_array_append (rfb->to_srv, rfb->cli_in->data, rfb->cli_in->len);
  g_byte_array_set_size (rfb->cli_in, 0);
}

static gboolean
srv_fail (KdGatewayRfb *rfb, GError **error, int code, const char *client_why, const char *format, ...) G_GNUC_PRINTF (5, 6);

static gboolean
srv_fail (KdGatewayRfb *rfb, GError **error, int code, const char *client_why, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_propagate_error (error, g_error_new_valist (KD_GATEWAY_ERROR, code, format, args));
  va_end (args);
  rfb->srv_state = SRV_FAILED;
  fail_client (rfb, client_why);
  return FALSE;
}

#define UNREACHABLE_WHY "the desktop's VNC server refused the console connection"

static gboolean
srv_step (KdGatewayRfb *rfb, gboolean *progress, GError **error)
{
  GByteArray *in = rfb->srv_in;

  *progress = FALSE;
  switch (rfb->srv_state)
    {
    case SRV_VERSION:
      {
        int major = 0, minor;
        const char *answer;

        if (in->len < KD_GATEWAY_RFB_VERSION_BYTES)
          return TRUE;
        minor = parse_version (in->data, &major);
        if (minor < 0 || major != 3)
          {
            g_autofree char *quoted = quote_version (in->data);
            return srv_fail (rfb, error, KD_GATEWAY_ERROR_RFB_PROTOCOL, UNREACHABLE_WHY,
                             "the VNC server does not speak RFB 3.x (it sent '%s')", quoted);
          }
        /* RFC 6143: unknown minor versions are treated as 3.3 */
        rfb->srv_minor = minor >= 8 ? 8 : minor == 7 ? 7 : 3;
        answer = rfb->srv_minor == 8 ? "RFB 003.008\n" : rfb->srv_minor == 7 ? "RFB 003.007\n" : "RFB 003.003\n";
        g_byte_array_append (rfb->to_srv, (const guint8 *) answer, KD_GATEWAY_RFB_VERSION_BYTES);
        consume (in, KD_GATEWAY_RFB_VERSION_BYTES);
        rfb->srv_state = rfb->srv_minor == 3 ? SRV_TYPE_33 : SRV_TYPES_COUNT;
        break;
      }

    case SRV_TYPE_33:
      {
        guint32 type;

        if (in->len < 4)
          return TRUE;
        type = read_u32 (in->data);
        consume (in, 4);
        if (type == RFB_SEC_INVALID)
          {
            rfb->reason_for = REASON_TYPES;
            rfb->srv_state = SRV_REASON_LEN;
          }
        else if (type == RFB_SEC_NONE)
          {
            rfb->srv_type = RFB_SEC_NONE;
            rfb->srv_state = SRV_DONE;
          }
        else if (type == RFB_SEC_VNC)
          {
            if (rfb->password == NULL)
              return srv_fail (rfb, error, KD_GATEWAY_ERROR_RFB_UNSUPPORTED, UNREACHABLE_WHY,
                               "the VNC server requires VNC authentication and no password is known");
            rfb->srv_type = RFB_SEC_VNC;
            rfb->srv_state = SRV_CHALLENGE;
          }
        else
          return srv_fail (rfb, error, KD_GATEWAY_ERROR_RFB_UNSUPPORTED, UNREACHABLE_WHY,
                           "the VNC server requires security type %u, which the gateway does not support", type);
        break;
      }

    case SRV_TYPES_COUNT:
      if (in->len < 1)
        return TRUE;
      rfb->types_count = in->data[0];
      consume (in, 1);
      if (rfb->types_count == 0)
        {
          rfb->reason_for = REASON_TYPES;
          rfb->srv_state = SRV_REASON_LEN;
        }
      else
        rfb->srv_state = SRV_TYPES_LIST;
      break;

    case SRV_TYPES_LIST:
      {
        gboolean has_none = FALSE, has_vnc = FALSE;

        if (in->len < rfb->types_count)
          return TRUE;
        for (guint i = 0; i < rfb->types_count; i++)
          {
            has_none |= in->data[i] == RFB_SEC_NONE;
            has_vnc |= in->data[i] == RFB_SEC_VNC;
          }
        if (has_none || (has_vnc && rfb->password != NULL))
          {
            consume (in, rfb->types_count);
            rfb->srv_type = has_none ? RFB_SEC_NONE : RFB_SEC_VNC;
            g_byte_array_append (rfb->to_srv, &rfb->srv_type, 1);
            if (rfb->srv_type == RFB_SEC_VNC)
              rfb->srv_state = SRV_CHALLENGE;
            else
              rfb->srv_state = rfb->srv_minor == 8 ? SRV_RESULT : SRV_DONE;
          }
        else
          {
            g_autoptr(GString) offered = g_string_new (NULL);
            for (guint i = 0; i < rfb->types_count; i++)
              g_string_append_printf (offered, "%s%u", i ? ", " : "", in->data[i]);
            return srv_fail (rfb, error, KD_GATEWAY_ERROR_RFB_UNSUPPORTED, UNREACHABLE_WHY,
                             "the VNC server offers no security type the gateway can use "
                             "(offered: %s; usable: 1 = None, 2 = VNC authentication%s)",
                             offered->str, rfb->password ? "" : " with a password, and none is known");
          }
        break;
      }

    case SRV_CHALLENGE:
      {
        guint8 response[16];

        if (in->len < 16)
          return TRUE;
        kd_gateway_rfb_vnc_auth_response (rfb->password, in->data, response);
        g_byte_array_append (rfb->to_srv, response, sizeof response);
        sodium_memzero (response, sizeof response);
        consume (in, 16);
        rfb->srv_state = SRV_RESULT;
        break;
      }

    case SRV_RESULT:
      {
        guint32 status;

        if (in->len < 4)
          return TRUE;
        status = read_u32 (in->data);
        consume (in, 4);
        if (status == 0)
          rfb->srv_state = SRV_DONE;
        else if (rfb->srv_minor == 8)
          {
            rfb->reason_for = REASON_RESULT;
            rfb->srv_state = SRV_REASON_LEN;
          }
        else
          return srv_fail (rfb, error, KD_GATEWAY_ERROR_RFB_AUTH_FAILED, UNREACHABLE_WHY,
                           "the VNC server refused the gateway's authentication (status %u)", status);
        break;
      }

    case SRV_REASON_LEN:
      if (in->len < 4)
        return TRUE;
      rfb->reason_len = read_u32 (in->data);
      if (rfb->reason_len > KD_GATEWAY_RFB_MAX_REASON_BYTES)
        return srv_fail (rfb, error, KD_GATEWAY_ERROR_RFB_PROTOCOL, UNREACHABLE_WHY,
                         "the VNC server sent a failure reason of %u bytes (the limit is %u)",
                         rfb->reason_len, (guint) KD_GATEWAY_RFB_MAX_REASON_BYTES);
      consume (in, 4);
      rfb->srv_state = SRV_REASON;
      break;

    case SRV_REASON:
      {
        g_autofree char *reason = NULL;

        if (in->len < rfb->reason_len)
          return TRUE;
        reason = printable_reason (in->data, rfb->reason_len);
        consume (in, rfb->reason_len);
        if (rfb->reason_for == REASON_RESULT)
          return srv_fail (rfb, error, KD_GATEWAY_ERROR_RFB_AUTH_FAILED, UNREACHABLE_WHY,
                           "the VNC server refused the gateway's authentication: '%s'", reason);
        return srv_fail (rfb, error, KD_GATEWAY_ERROR_RFB_UNSUPPORTED, UNREACHABLE_WHY,
                         "the VNC server refused the connection: '%s'", reason);
      }

    case SRV_DONE:
      maybe_finish (rfb);
      return TRUE;

    case SRV_FAILED:
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL,
                   "the VNC handshake has already failed");
      return FALSE;
    }

  *progress = TRUE;
  return TRUE;
}

static gboolean
cli_fail (KdGatewayRfb *rfb, GError **error, const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
cli_fail (KdGatewayRfb *rfb, GError **error, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_propagate_error (error, g_error_new_valist (KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL, format, args));
  va_end (args);
  rfb->cli_state = CLI_FAILED;
  return FALSE;
}

static gboolean
cli_step (KdGatewayRfb *rfb, gboolean *progress, GError **error)
{
  GByteArray *in = rfb->cli_in;

  *progress = FALSE;
  switch (rfb->cli_state)
    {
    case CLI_VERSION:
      {
        int major = 0, minor;

        if (in->len < KD_GATEWAY_RFB_VERSION_BYTES)
          return TRUE;
        minor = parse_version (in->data, &major);
        if (major != 3 || (minor != 3 && minor != 7 && minor != 8))
          {
            g_autofree char *quoted = quote_version (in->data);
            return cli_fail (rfb, error, "the browser's RFB version '%s' is not 3.3, 3.7 or 3.8", quoted);
          }
        consume (in, KD_GATEWAY_RFB_VERSION_BYTES);
        rfb->cli_minor = minor;
        if (minor == 3)
          rfb->cli_state = CLI_WAIT_SERVER;   /* the type is sent once the desktop accepted us */
        else
          {
            const guint8 types[2] = { 1, RFB_SEC_NONE };
            g_byte_array_append (rfb->to_cli, types, sizeof types);
            rfb->cli_state = CLI_CHOICE;
          }
        break;
      }

    case CLI_CHOICE:
      if (in->len < 1)
        return TRUE;
      if (in->data[0] != RFB_SEC_NONE)
        {
          if (rfb->cli_minor == 8)
            {
              static const char why[] = "only security type None (1) is offered";
              append_u32 (rfb->to_cli, 1);
              append_u32 (rfb->to_cli, sizeof why - 1);
              g_byte_array_append (rfb->to_cli, (const guint8 *) why, sizeof why - 1);
            }
          return cli_fail (rfb, error, "the browser chose RFB security type %u; only None (1) is offered",
                           in->data[0]);
        }
      consume (in, 1);
      rfb->cli_state = CLI_WAIT_SERVER;
      break;

    case CLI_WAIT_SERVER:
      maybe_finish (rfb);
      return TRUE;

    case CLI_DONE:
      return TRUE;

    case CLI_FAILED:
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL,
                   "the browser's RFB handshake has already failed");
      return FALSE;
    }

  *progress = TRUE;
  return TRUE;
}

static gboolean
run (KdGatewayRfb *rfb, GError **error)
{
  gboolean progress = TRUE;

  while (progress && !kd_gateway_rfb_is_done (rfb))
    {
      gboolean p1 = FALSE, p2 = FALSE;

      if (!srv_step (rfb, &p1, error))
        return FALSE;
      if (!cli_step (rfb, &p2, error))
        return FALSE;
      progress = p1 || p2;
    }
  return TRUE;
}

static gboolean
feed (KdGatewayRfb *rfb, GByteArray *in, GByteArray *out_when_done, const char *who,
      const guint8 *data, gsize len, GError **error)
{
  if (rfb->srv_state == SRV_FAILED || rfb->cli_state == CLI_FAILED)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL,
                   "the RFB handshake has already failed");
      return FALSE;
    }
  if (kd_gateway_rfb_is_done (rfb))
    {
      g_byte_array_append (out_when_done, data, len);
      return TRUE;
    }
  if (len > KD_GATEWAY_RFB_MAX_PENDING || in->len + len > KD_GATEWAY_RFB_MAX_PENDING)
    {
      g_set_error (error, KD_GATEWAY_ERROR, KD_GATEWAY_ERROR_RFB_PROTOCOL,
                   "the %s sent more than %u bytes during the RFB handshake",
                   who, (guint) KD_GATEWAY_RFB_MAX_PENDING);
      if (in == rfb->srv_in)
        {
          rfb->srv_state = SRV_FAILED;
          fail_client (rfb, UNREACHABLE_WHY);
        }
      else
        rfb->cli_state = CLI_FAILED;
      return FALSE;
    }
  g_byte_array_append (in, data, len);
  return run (rfb, error);
}

/**
 * kd_gateway_rfb_feed_server:
 * @rfb: the handshake
 * @data: bytes read from the VNC server
 * @len: their number
 * @error: return location for a #GError
 *
 * Returns: %FALSE with KD_GATEWAY_ERROR_RFB_* when the VNC server broke
 *   the protocol, offered nothing usable or refused us (the output toward
 *   the browser may then hold an RFB failure message worth sending).
 */
gboolean
kd_gateway_rfb_feed_server (KdGatewayRfb *rfb, const guint8 *data, gsize len, GError **error)
{
  return feed (rfb, rfb->srv_in, rfb->to_cli, "VNC server", data, len, error);
}

/**
 * kd_gateway_rfb_feed_client:
 * @rfb: the handshake
 * @data: payload bytes received from the browser
 * @len: their number
 * @error: return location for a #GError
 *
 * Returns: %FALSE with KD_GATEWAY_ERROR_RFB_PROTOCOL when the browser
 *   broke the protocol.
 */
gboolean
kd_gateway_rfb_feed_client (KdGatewayRfb *rfb, const guint8 *data, gsize len, GError **error)
{
  return feed (rfb, rfb->cli_in, rfb->to_srv, "browser", data, len, error);
}

static GBytes *
take (GByteArray *out)
{
  GBytes *bytes;

  if (out->len == 0)
    return NULL;
  bytes = g_bytes_new (out->data, out->len);
  g_byte_array_set_size (out, 0);
  return bytes;
}

GBytes *
kd_gateway_rfb_take_to_server (KdGatewayRfb *rfb)
{
  return take (rfb->to_srv);
}

GBytes *
kd_gateway_rfb_take_to_client (KdGatewayRfb *rfb)
{
  return take (rfb->to_cli);
}

gboolean
kd_gateway_rfb_is_done (KdGatewayRfb *rfb)
{
  return rfb->srv_state == SRV_DONE && rfb->cli_state == CLI_DONE;
}

gboolean
kd_gateway_rfb_server_done (KdGatewayRfb *rfb)
{
  return rfb->srv_state == SRV_DONE;
}

guint8
kd_gateway_rfb_server_security_type (KdGatewayRfb *rfb)
{
  return rfb->srv_type;
}

int
kd_gateway_rfb_client_minor (KdGatewayRfb *rfb)
{
  return rfb->cli_minor;
}
