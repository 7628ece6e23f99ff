/*
 * amqp_baseline.c: the plain-C yardstick for jsm-migrate's Swift AMQP layer.
 *
 * It does over librabbitmq (0.11, flat headers) exactly what the Swift benchmark
 * (`amqp-benchmark`) does through the Swift layer, so the two rates can be compared:
 *
 *   publish: declare a durable quorum queue, confirm.select, publish COUNT persistent
 *            messages of SIZE bytes to the default exchange (routing key = queue), and after
 *            every WINDOW messages wait until the broker has confirmed all of them
 *            (acks with `multiple` handled; a nack is an error). With --in-flight K > 1, up to
 *            K windows stay unconfirmed (the wait is for all but the last K-1 windows), like a
 *            client that pipelines K confirm batches.
 *            Timed: from the first publish to the last confirm.
 *   consume: declare the same queue, basic.qos prefetch PREFETCH, basic.consume with manual
 *            acks, ack every message (or every ACK_EVERY messages with `multiple`) until COUNT
 *            messages arrived. Timed: from basic.consume to the broker's channel.close-ok, a
 *            round trip that follows the last ack.
 *
 * Output: one JSON line on stdout,
 *   {"impl":"c","side":"publish","messages":N,"bytes":SIZE,"seconds":S,"msgPerSec":R,"peakRSSKiB":K}
 * (peak RSS from getrusage's ru_maxrss). Diagnostics go to stderr; any failure exits 1.
 *
 * Usage:
 *   amqp_baseline publish|consume --host 127.0.0.1 --port 5673 --user U --password-env VAR
 *                 --queue Q --count N --size B [--vhost /] [--window 500] [--prefetch 200]
 *                 [--in-flight 1] [--ack-every 1] [--timeout 600]
 * The password is read from the environment variable VAR, never from the command line.
 * --timeout bounds the whole run in seconds; no single wait for the broker exceeds 30 s.
 *
 * Build: cc -O2 -o amqp_baseline amqp_baseline.c -lrabbitmq
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

#define CHANNEL 1
/* The longest single wait for the broker before giving up. */
#define FRAME_WAIT_SECONDS 30

/* Command-line settings. */
struct options {
    const char *mode;
    const char *host;
    int port;
    const char *user;
    const char *password_env;
    const char *vhost;
    const char *queue;
    long count;
    long size;
    long window;
    long in_flight;
    int prefetch;
    long ack_every;
    long timeout_seconds;
};

static double deadline; /* monotonic seconds after which the run fails */

static void die(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("amqp_baseline: error: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check_deadline(const char *what) {
    if (now_seconds() > deadline) {
        die("gave up: %s took longer than the --timeout", what);
    }
}

/* Turns a librabbitmq RPC reply into a readable failure, or returns if it was normal. */
static void check_reply(amqp_rpc_reply_t reply, const char *what) {
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return;
    case AMQP_RESPONSE_NONE:
        die("%s: no reply (missing RPC reply type)", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        die("%s: %s", what, amqp_error_string2(reply.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *close = reply.reply.decoded;
            die("%s: the broker closed the connection: %u %.*s", what, close->reply_code,
                (int)close->reply_text.len, (const char *)close->reply_text.bytes);
        } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *close = reply.reply.decoded;
            die("%s: the broker closed the channel: %u %.*s", what, close->reply_code,
                (int)close->reply_text.len, (const char *)close->reply_text.bytes);
        }
        die("%s: unexpected server method 0x%08X", what, reply.reply.id);
        break;
    }
    die("%s: unknown reply type %d", what, (int)reply.reply_type);
}

/* A method frame that ends the run: the broker closed the channel or the connection. */
static void die_on_close(const amqp_method_t *method, const char *what) {
    if (method->id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *close = method->decoded;
        die("%s: the broker closed the channel: %u %.*s", what, close->reply_code,
            (int)close->reply_text.len, (const char *)close->reply_text.bytes);
    }
    if (method->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *close = method->decoded;
        die("%s: the broker closed the connection: %u %.*s", what, close->reply_code,
            (int)close->reply_text.len, (const char *)close->reply_text.bytes);
    }
}

static long parse_long(const char *name, const char *text, long min, long max) {
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        die("%s must be a whole number from %ld to %ld (got '%s')", name, min, max, text);
    }
    return value;
}

static void usage(void) {
    fputs("usage: amqp_baseline publish|consume --host H --port P --user U --password-env VAR\n"
          "                     --queue Q --count N --size B [--vhost /] [--window 500]\n"
          "                     [--in-flight 1] [--prefetch 200] [--ack-every 1] [--timeout 600]\n",
          stderr);
    exit(2);
}

static struct options parse_options(int argc, char **argv) {
    struct options o = {
        .mode = NULL, .host = "127.0.0.1", .port = 5672, .user = "guest",
        .password_env = "AMQP_PASSWORD", .vhost = "/", .queue = NULL, .count = 100000,
        .size = 1024, .window = 500, .in_flight = 1, .prefetch = 200, .ack_every = 1, .timeout_seconds = 600,
    };
    if (argc < 2) {
        usage();
    }
    o.mode = argv[1];
    if (strcmp(o.mode, "publish") != 0 && strcmp(o.mode, "consume") != 0) {
        usage();
    }
    for (int i = 2; i < argc; i += 2) {
        const char *name = argv[i];
        if (i + 1 >= argc) {
            die("%s needs a value", name);
        }
        const char *value = argv[i + 1];
        if (strcmp(name, "--host") == 0) {
            o.host = value;
        } else if (strcmp(name, "--port") == 0) {
            o.port = (int)parse_long(name, value, 1, 65535);
        } else if (strcmp(name, "--user") == 0) {
            o.user = value;
        } else if (strcmp(name, "--password-env") == 0) {
            o.password_env = value;
        } else if (strcmp(name, "--vhost") == 0) {
            o.vhost = value;
        } else if (strcmp(name, "--queue") == 0) {
            o.queue = value;
        } else if (strcmp(name, "--count") == 0) {
            o.count = parse_long(name, value, 1, 100000000);
        } else if (strcmp(name, "--size") == 0) {
            o.size = parse_long(name, value, 0, 64L * 1024 * 1024);
        } else if (strcmp(name, "--window") == 0) {
            o.window = parse_long(name, value, 1, 1000000);
        } else if (strcmp(name, "--in-flight") == 0) {
            o.in_flight = parse_long(name, value, 1, 10000);
        } else if (strcmp(name, "--prefetch") == 0) {
            o.prefetch = (int)parse_long(name, value, 1, 65535);
        } else if (strcmp(name, "--ack-every") == 0) {
            o.ack_every = parse_long(name, value, 1, 65535);
        } else if (strcmp(name, "--timeout") == 0) {
            o.timeout_seconds = parse_long(name, value, 1, 86400);
        } else {
            die("unknown option %s", name);
        }
    }
    if (o.queue == NULL || o.queue[0] == '\0') {
        die("--queue is required");
    }
    return o;
}

/* Connects, logs in and opens channel 1. */
static amqp_connection_state_t open_connection(const struct options *o) {
    const char *password = getenv(o->password_env);
    if (password == NULL) {
        die("the environment variable %s (--password-env) is not set", o->password_env);
    }
    amqp_connection_state_t conn = amqp_new_connection();
    if (conn == NULL) {
        die("out of memory creating the connection");
    }
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    if (socket == NULL) {
        die("out of memory creating the TCP socket");
    }
    struct timeval connect_timeout = {.tv_sec = FRAME_WAIT_SECONDS, .tv_usec = 0};
    int status = amqp_socket_open_noblock(socket, o->host, o->port, &connect_timeout);
    if (status != AMQP_STATUS_OK) {
        die("cannot connect to %s:%d: %s", o->host, o->port, amqp_error_string2(status));
    }
    /* channel_max 0 = the broker's limit, frame_max 128 KiB, heartbeat 60 s. */
    check_reply(amqp_login(conn, o->vhost, 0, 131072, 60, AMQP_SASL_METHOD_PLAIN, o->user, password),
                "login");
    amqp_channel_open(conn, CHANNEL);
    check_reply(amqp_get_rpc_reply(conn), "channel.open");
    return conn;
}

/* Declares the durable quorum queue (idempotent with the same arguments). */
static void declare_queue(amqp_connection_state_t conn, const struct options *o) {
    amqp_table_entry_t entries[1];
    entries[0].key = amqp_cstring_bytes("x-queue-type");
    entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[0].value.value.bytes = amqp_cstring_bytes("quorum");
    amqp_table_t arguments = {.num_entries = 1, .entries = entries};
    amqp_queue_declare(conn, CHANNEL, amqp_cstring_bytes(o->queue), /*passive*/ 0,
                       /*durable*/ 1, /*exclusive*/ 0, /*auto_delete*/ 0, arguments);
    check_reply(amqp_get_rpc_reply(conn), "queue.declare");
}

/* Closes channel and connection; returns once the broker answered channel.close. */
static void close_connection(amqp_connection_state_t conn) {
    check_reply(amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS), "channel.close");
    check_reply(amqp_connection_close(conn, AMQP_REPLY_SUCCESS), "connection.close");
    amqp_destroy_connection(conn);
}

/* Publisher-confirm bookkeeping: delivery tags 1...count, each settled exactly once. */
struct confirms {
    unsigned char *settled; /* settled[tag] != 0 once acked or nacked */
    uint64_t lowest_open;   /* every tag below it is settled */
    uint64_t settled_count;
    uint64_t nacked_count;
};

static void settle(struct confirms *c, uint64_t tag, int nack) {
    if (!c->settled[tag]) {
        c->settled[tag] = 1;
        c->settled_count++;
        if (nack) {
            c->nacked_count++;
        }
    }
}

static void on_confirm(struct confirms *c, uint64_t tag, int multiple, int nack, uint64_t published) {
    if (multiple && tag == 0) {
        tag = published; /* "everything so far" */
    }
    if (tag == 0 || tag > published) {
        die("the broker confirmed delivery tag %" PRIu64 " but only %" PRIu64 " were published",
            tag, published);
    }
    if (multiple) {
        for (uint64_t t = c->lowest_open; t <= tag; t++) {
            settle(c, t, nack);
        }
    } else {
        settle(c, tag, nack);
    }
    while (c->lowest_open <= published && c->settled[c->lowest_open]) {
        c->lowest_open++;
    }
}

/* Reads frames until at least TARGET of the PUBLISHED messages are confirmed. The publishing
 * channel has no consumer, so amqp_simple_wait_frame cannot swallow deliveries here. */
static void wait_for_confirms(amqp_connection_state_t conn, struct confirms *c, uint64_t published,
                              uint64_t target) {
    while (c->settled_count < target) {
        check_deadline("waiting for publisher confirms");
        amqp_frame_t frame;
        struct timeval timeout = {.tv_sec = FRAME_WAIT_SECONDS, .tv_usec = 0};
        int status = amqp_simple_wait_frame_noblock(conn, &frame, &timeout);
        if (status == AMQP_STATUS_TIMEOUT) {
            die("no publisher confirm for %d s (%" PRIu64 " of %" PRIu64 " confirmed)",
                FRAME_WAIT_SECONDS, c->settled_count, published);
        }
        if (status != AMQP_STATUS_OK) {
            die("waiting for confirms: %s", amqp_error_string2(status));
        }
        if (frame.frame_type != AMQP_FRAME_METHOD) {
            continue;
        }
        die_on_close(&frame.payload.method, "waiting for confirms");
        if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *ack = frame.payload.method.decoded;
            on_confirm(c, ack->delivery_tag, ack->multiple, 0, published);
        } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *nack = frame.payload.method.decoded;
            on_confirm(c, nack->delivery_tag, nack->multiple, 1, published);
        }
    }
}

static double run_publish(const struct options *o) {
    amqp_connection_state_t conn = open_connection(o);
    declare_queue(conn, o);
    amqp_confirm_select(conn, CHANNEL);
    check_reply(amqp_get_rpc_reply(conn), "confirm.select");

    char *body = malloc((size_t)o->size + 1);
    struct confirms c = {.settled = calloc((size_t)o->count + 1, 1), .lowest_open = 1};
    if (body == NULL || c.settled == NULL) {
        die("out of memory");
    }
    memset(body, 'j', (size_t)o->size);
    amqp_bytes_t message = {.len = (size_t)o->size, .bytes = body};
    amqp_basic_properties_t properties;
    memset(&properties, 0, sizeof properties);
    properties._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    properties.content_type = amqp_cstring_bytes("application/octet-stream");
    amqp_bytes_t routing_key = amqp_cstring_bytes(o->queue);

    double started = now_seconds();
    for (uint64_t published = 1; published <= (uint64_t)o->count; published++) {
        int status = amqp_basic_publish(conn, CHANNEL, amqp_empty_bytes, routing_key,
                                        /*mandatory*/ 0, /*immediate*/ 0, &properties, message);
        if (status != AMQP_STATUS_OK) {
            die("basic.publish #%" PRIu64 ": %s", published, amqp_error_string2(status));
        }
        if (published == (uint64_t)o->count) {
            wait_for_confirms(conn, &c, published, published); /* everything, at the end */
        } else if (published % (uint64_t)o->window == 0) {
            /* All but the last in_flight - 1 windows must be confirmed. */
            uint64_t allowed = (uint64_t)(o->in_flight - 1) * (uint64_t)o->window;
            if (published > allowed) {
                wait_for_confirms(conn, &c, published, published - allowed);
            }
            amqp_maybe_release_buffers(conn);
        }
    }
    double seconds = now_seconds() - started;
    if (c.nacked_count > 0) {
        die("the broker refused (nacked) %" PRIu64 " messages", c.nacked_count);
    }
    close_connection(conn);
    free(c.settled);
    free(body);
    return seconds;
}

static double run_consume(const struct options *o) {
    amqp_connection_state_t conn = open_connection(o);
    declare_queue(conn, o);
    amqp_basic_qos(conn, CHANNEL, 0, (uint16_t)o->prefetch, 0);
    check_reply(amqp_get_rpc_reply(conn), "basic.qos");

    double started = now_seconds();
    amqp_basic_consume(conn, CHANNEL, amqp_cstring_bytes(o->queue), amqp_empty_bytes,
                       /*no_local*/ 0, /*no_ack*/ 0, /*exclusive*/ 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(conn), "basic.consume");

    long received = 0;
    long unacked = 0;
    uint64_t last_tag = 0;
    while (received < o->count) {
        check_deadline("consuming");
        amqp_maybe_release_buffers(conn);
        amqp_envelope_t envelope;
        struct timeval timeout = {.tv_sec = FRAME_WAIT_SECONDS, .tv_usec = 0};
        amqp_rpc_reply_t reply = amqp_consume_message(conn, &envelope, &timeout, 0);
        if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
            if ((long)envelope.message.body.len != o->size) {
                die("message %ld has %zu bytes, expected %ld", received + 1,
                    envelope.message.body.len, o->size);
            }
            received++;
            unacked++;
            last_tag = envelope.delivery_tag;
            amqp_destroy_envelope(&envelope);
            if (unacked >= o->ack_every) {
                int status = amqp_basic_ack(conn, CHANNEL, last_tag, o->ack_every > 1);
                if (status != AMQP_STATUS_OK) {
                    die("basic.ack: %s", amqp_error_string2(status));
                }
                unacked = 0;
            }
            continue;
        }
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_TIMEOUT) {
            die("no message for %d s (%ld of %ld received): is the queue filled?",
                FRAME_WAIT_SECONDS, received, o->count);
        }
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            reply.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            /* A frame that is not a delivery: read it to learn what happened. */
            amqp_frame_t frame;
            struct timeval frame_timeout = {.tv_sec = FRAME_WAIT_SECONDS, .tv_usec = 0};
            int status = amqp_simple_wait_frame_noblock(conn, &frame, &frame_timeout);
            if (status != AMQP_STATUS_OK) {
                die("reading a non-delivery frame: %s", amqp_error_string2(status));
            }
            if (frame.frame_type == AMQP_FRAME_METHOD) {
                die_on_close(&frame.payload.method, "consuming");
                if (frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD) {
                    die("the broker cancelled the consumer after %ld messages", received);
                }
            }
            continue;
        }
        check_reply(reply, "consuming");
    }
    if (unacked > 0) {
        int status = amqp_basic_ack(conn, CHANNEL, last_tag, 1);
        if (status != AMQP_STATUS_OK) {
            die("basic.ack: %s", amqp_error_string2(status));
        }
    }
    /* channel.close-ok: the broker's channel has read every ack sent before it. (A quorum queue
     * in RabbitMQ 3.10 may still return the last few acked messages to the queue when the channel
     * closes right after them, rabbitmq/rabbitmq-server#10327: harmless here, as the benchmark
     * deletes its queues between runs.) */
    check_reply(amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS), "channel.close");
    double seconds = now_seconds() - started;
    check_reply(amqp_connection_close(conn, AMQP_REPLY_SUCCESS), "connection.close");
    amqp_destroy_connection(conn);
    return seconds;
}

int main(int argc, char **argv) {
    struct options o = parse_options(argc, argv);
    deadline = now_seconds() + (double)o.timeout_seconds;

    double seconds = strcmp(o.mode, "publish") == 0 ? run_publish(&o) : run_consume(&o);

    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) {
        die("getrusage: %s", strerror(errno));
    }
    if (seconds <= 0) {
        seconds = 1e-9;
    }
    printf("{\"impl\":\"c\",\"side\":\"%s\",\"messages\":%ld,\"bytes\":%ld,\"seconds\":%.3f,"
           "\"msgPerSec\":%.1f,\"peakRSSKiB\":%ld}\n",
           o.mode, o.count, o.size, seconds, (double)o.count / seconds, (long)usage.ru_maxrss);
    return 0;
}
