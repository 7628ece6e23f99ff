// The C surface of librabbitmq that the Swift AMQP module uses.
#ifndef JSM_CRABBITMQ_SHIM_H
#define JSM_CRABBITMQ_SHIM_H

// rabbitmq-c 0.12 moved its headers under <rabbitmq-c/...>; Debian 12 ships 0.11 with flat headers.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#include <rabbitmq-c/framing.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#include <amqp_framing.h>
#endif

#include <sys/time.h>
// Why: Swift's Glibc module does not export eventfd. The connection thread sleeps in poll() on
// its socket and on an eventfd that other threads signal when they queue work for it.
#include <sys/eventfd.h>
#include <poll.h>

// Why: amqp_login_with_properties is variadic, and Swift cannot call C variadic functions.
// This fixes the arguments to PLAIN authentication, the only mechanism the project uses. The
// extra client properties carry the connection name shown by `rabbitmqctl list_connections`;
// librabbitmq merges its own capabilities (authentication_failure_close, ...) into them.
static inline amqp_rpc_reply_t jsm_amqp_login_plain_with_properties(
    amqp_connection_state_t state, const char *vhost, int channel_max, int frame_max,
    int heartbeat, const amqp_table_t *properties, const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

#endif
