/*
 * kd-gateway-error.c: the console gateway's error domain (KdGatewayError).
 */
#include "gateway/kd-gateway.h"

G_DEFINE_QUARK (kd-gateway-error-quark, kd_gateway_error)
