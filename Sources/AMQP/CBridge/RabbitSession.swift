import CRabbitMQ
import Glibc

/// One open librabbitmq connection.
///
/// Not `Sendable` on purpose: librabbitmq forbids using a connection from two threads, so a
/// session is created, used and destroyed by exactly one ``ConnectionLoop`` on its own thread.
/// Every failure is translated into an ``AMQPError`` that names the cause.
final class RabbitSession {
    /// What the read side of the connection produced.
    enum Event {
        case delivery(
            channel: UInt16, tag: UInt64, redelivered: Bool, exchange: String, routingKey: String,
            properties: AMQPProperties, body: [UInt8])
        case confirm(channel: UInt16, tag: UInt64, multiple: Bool, acknowledged: Bool)
        case returned(
            channel: UInt16, replyCode: UInt16, replyText: String, exchange: String, routingKey: String,
            messageId: String?)
        case channelClosed(channel: UInt16, replyCode: UInt16, replyText: String)
        case consumerCancelled(channel: UInt16)
        case blocked(reason: String)
        case unblocked
        case ignored(method: UInt32)
    }

    private let state: amqp_connection_state_t
    private let arena = CArena()
    private let endpoint: String
    /// False once the connection is known to be unusable; the loop then reconnects.
    private(set) var isUsable = true

    /// Opens the TCP (or TLS) connection and logs in, within the configured connect timeout.
    init(_ configuration: AMQPConfiguration) throws(AMQPError) {
        endpoint = "\(configuration.host):\(configuration.port)"
        guard let state = amqp_new_connection() else {
            throw AMQPError(.library, "librabbitmq could not allocate a connection")
        }
        self.state = state
        var connectTimeout = timeval(configuration.connectTimeout)
        let socket: OpaquePointer?
        if let tls = configuration.tls {
            socket = amqp_ssl_socket_new(state)
            guard let socket else { throw AMQPError(.tlsFailed, "librabbitmq could not create a TLS socket") }
            amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
            if let ca = tls.caCertificateFile {
                guard amqp_ssl_socket_set_cacert(socket, ca) == AMQP_STATUS_OK.rawValue else {
                    throw AMQPError(.tlsFailed, "cannot load the CA certificate file '\(ca)'")
                }
            }
            if let cert = tls.clientCertificateFile, let key = tls.clientKeyFile {
                guard amqp_ssl_socket_set_key(socket, cert, key) == AMQP_STATUS_OK.rawValue else {
                    throw AMQPError(.tlsFailed, "cannot load the client certificate '\(cert)' or key '\(key)'")
                }
            }
        } else {
            socket = amqp_tcp_socket_new(state)
            guard socket != nil else { throw AMQPError(.library, "librabbitmq could not create a TCP socket") }
        }
        _ = amqp_set_handshake_timeout(state, &connectTimeout)
        let opened = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &connectTimeout)
        guard opened == AMQP_STATUS_OK.rawValue else {
            throw Self.connectError(opened, endpoint: endpoint, tls: configuration.tls != nil)
        }
        // The broker sees the connection name in its management UI; librabbitmq adds its capabilities.
        let connectionName = arena.bytes(configuration.connectionName)
        var nameEntry = amqp_table_entry_t(key: arena.bytes("connection_name"), value: amqp_field_value_t())
        nameEntry.value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
        nameEntry.value.value.bytes = connectionName
        let login = withUnsafeMutablePointer(to: &nameEntry) { entry in
            var properties = amqp_table_t(num_entries: 1, entries: entry)
            return jsm_amqp_login_plain_with_properties(
                state, configuration.virtualHost, 2047, Int32(configuration.frameMax),
                Int32(configuration.heartbeat.components.seconds), &properties,
                configuration.user, configuration.password)
        }
        arena.reset()
        if let failure = loginError(login, configuration) { throw failure }
        var rpcTimeout = timeval(configuration.operationTimeout)
        _ = amqp_set_rpc_timeout(state, &rpcTimeout)
    }

    deinit {
        amqp_destroy_connection(state)
    }

    private static func connectError(_ status: Int32, endpoint: String, tls: Bool) -> AMQPError {
        let reason = String(cString: amqp_error_string2(status))
        switch status {
        case AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue:
            return AMQPError(.tlsFailed, "TLS handshake with \(endpoint) failed: \(reason)")
        case AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue:
            return AMQPError(.tlsFailed, "the certificate of \(endpoint) is not signed by a trusted CA: \(reason)")
        case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue:
            return AMQPError(.tlsFailed, "the certificate of \(endpoint) does not name that host: \(reason)")
        case AMQP_STATUS_TIMEOUT.rawValue:
            return AMQPError(.unreachable, "timed out connecting to \(endpoint)\(tls ? " (TCP or TLS handshake)" : "")")
        case AMQP_STATUS_SOCKET_ERROR.rawValue:
            return AMQPError(
                .unreachable,
                "cannot connect to \(endpoint): \(reason) (nothing listening, or the connection was refused or reset)")
        default:
            return AMQPError(.unreachable, "cannot connect to \(endpoint): \(reason)")
        }
    }

    private func loginError(_ reply: amqp_rpc_reply_t, _ configuration: AMQPConfiguration) -> AMQPError? {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return nil
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let text = CDecode.string(close.reply_text)
            isUsable = false
            if close.reply_code == 403 {
                return AMQPError(
                    .authenticationFailed,
                    "the broker at \(endpoint) refused user '\(configuration.user)' (wrong user name or password)",
                    replyCode: close.reply_code, replyText: text)
            }
            if close.reply_code == 530 {
                return AMQPError(
                    .authenticationFailed,
                    "user '\(configuration.user)' may not use vhost '\(configuration.virtualHost)' on \(endpoint)",
                    replyCode: close.reply_code, replyText: text)
            }
            return AMQPError(
                .connectionLost, "the broker at \(endpoint) closed the connection during login",
                replyCode: close.reply_code, replyText: text)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            isUsable = false
            let status = reply.library_error
            if status == AMQP_STATUS_CONNECTION_CLOSED.rawValue || status == AMQP_STATUS_SOCKET_CLOSED.rawValue {
                return AMQPError(
                    .authenticationFailed,
                    "the broker at \(endpoint) closed the connection during login (wrong user name or password, or no access to vhost '\(configuration.virtualHost)')"
                )
            }
            if status <= AMQP_STATUS_SSL_ERROR.rawValue && status > _AMQP_STATUS_SSL_NEXT_VALUE.rawValue {
                return Self.connectError(status, endpoint: endpoint, tls: true)
            }
            return AMQPError(
                .unreachable, "login to \(endpoint) failed: \(String(cString: amqp_error_string2(status)))")
        default:
            isUsable = false
            return AMQPError(.library, "login to \(endpoint) failed without a reason")
        }
    }

    // MARK: Synchronous operations

    /// Turns a reply into nothing or an error. A broker-side channel close is answered with
    /// close-ok here (librabbitmq does not), so the caller only has to reopen the channel.
    private func check(_ reply: amqp_rpc_reply_t, _ what: @autoclosure () -> String, channel: UInt16) throws(AMQPError)
    {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let text = CDecode.string(close.reply_text)
            sendChannelCloseOk(channel)
            throw AMQPError(.channelClosed, "\(what()) failed", replyCode: close.reply_code, replyText: text)
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let text = CDecode.string(close.reply_text)
            sendConnectionCloseOk()
            throw AMQPError(
                .connectionLost, "the broker at \(endpoint) closed the connection during \(what())",
                replyCode: close.reply_code, replyText: text)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            isUsable = false
            if reply.library_error == AMQP_STATUS_TIMEOUT.rawValue {
                throw AMQPError(.timeout, "\(what()) got no answer from \(endpoint) in time")
            }
            throw AMQPError(
                .connectionLost,
                "\(what()) failed: connection to \(endpoint) lost (\(String(cString: amqp_error_string2(reply.library_error))))"
            )
        default:
            isUsable = false
            throw AMQPError(.library, "\(what()) failed without a reason")
        }
    }

    private func checkLastReply(_ what: @autoclosure () -> String, channel: UInt16) throws(AMQPError) {
        try check(amqp_get_rpc_reply(state), what(), channel: channel)
    }

    private func checkStatus(_ status: Int32, _ what: @autoclosure () -> String) throws(AMQPError) {
        guard status != AMQP_STATUS_OK.rawValue else { return }
        isUsable = false
        throw AMQPError(
            .connectionLost,
            "\(what()) failed: connection to \(endpoint) lost (\(String(cString: amqp_error_string2(status))))")
    }

    func openChannel(_ channel: UInt16) throws(AMQPError) {
        amqp_channel_open(state, channel)
        try checkLastReply("opening channel \(channel)", channel: channel)
    }

    /// Closes a channel the broker still considers open; errors are irrelevant at that point.
    func closeChannel(_ channel: UInt16) {
        _ = amqp_channel_close(state, channel, Int32(AMQP_REPLY_SUCCESS))
    }

    func selectConfirms(_ channel: UInt16) throws(AMQPError) {
        amqp_confirm_select(state, channel)
        try checkLastReply("enabling publisher confirms on channel \(channel)", channel: channel)
    }

    func declare(_ exchange: ExchangeSpec, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_exchange_declare(
            state, channel, arena.bytes(exchange.name), arena.bytes(exchange.kind.rawValue), 0,
            exchange.durable ? 1 : 0, 0, 0, arena.table(exchange.arguments))
        try checkLastReply("declaring exchange '\(exchange.name)'", channel: channel)
    }

    func declare(_ queue: QueueSpec, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_queue_declare(
            state, channel, arena.bytes(queue.name), 0, queue.durable ? 1 : 0, 0, 0,
            arena.table(queue.arguments))
        try checkLastReply("declaring queue '\(queue.name)'", channel: channel)
    }

    func declarePassive(exchange: String, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_exchange_declare(state, channel, arena.bytes(exchange), arena.bytes(""), 1, 0, 0, 0, amqp_empty_table)
        try checkLastReply("looking up exchange '\(exchange)'", channel: channel)
    }

    func declarePassive(queue: String, channel: UInt16) throws(AMQPError) -> QueueCounts {
        defer { arena.reset() }
        let ok = amqp_queue_declare(state, channel, arena.bytes(queue), 1, 0, 0, 0, amqp_empty_table)
        try checkLastReply("looking up queue '\(queue)'", channel: channel)
        guard let ok else { throw AMQPError(.library, "looking up queue '\(queue)' returned nothing") }
        return QueueCounts(ready: ok.pointee.message_count, consumers: ok.pointee.consumer_count)
    }

    func bind(_ binding: BindingSpec, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_queue_bind(
            state, channel, arena.bytes(binding.queue), arena.bytes(binding.exchange),
            arena.bytes(binding.routingKey), amqp_empty_table)
        try checkLastReply(
            "binding queue '\(binding.queue)' to exchange '\(binding.exchange)' with key '\(binding.routingKey)'",
            channel: channel)
    }

    func deleteQueue(_ queue: String, channel: UInt16) throws(AMQPError) -> UInt32 {
        defer { arena.reset() }
        let ok = amqp_queue_delete(state, channel, arena.bytes(queue), 0, 0)
        try checkLastReply("deleting queue '\(queue)'", channel: channel)
        return ok?.pointee.message_count ?? 0
    }

    func purgeQueue(_ queue: String, channel: UInt16) throws(AMQPError) -> UInt32 {
        defer { arena.reset() }
        let ok = amqp_queue_purge(state, channel, arena.bytes(queue))
        try checkLastReply("purging queue '\(queue)'", channel: channel)
        return ok?.pointee.message_count ?? 0
    }

    func deleteExchange(_ exchange: String, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_exchange_delete(state, channel, arena.bytes(exchange), 0)
        try checkLastReply("deleting exchange '\(exchange)'", channel: channel)
    }

    func setPrefetch(_ count: UInt16, channel: UInt16) throws(AMQPError) {
        amqp_basic_qos(state, channel, 0, count, 0)
        try checkLastReply("setting prefetch \(count) on channel \(channel)", channel: channel)
    }

    func consume(queue: String, consumerTag: String, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_basic_consume(state, channel, arena.bytes(queue), arena.bytes(consumerTag), 0, 0, 0, amqp_empty_table)
        try checkLastReply("consuming from queue '\(queue)'", channel: channel)
    }

    /// Ends a subscription (basic.cancel); the channel stays open for settlements.
    func cancelConsume(consumerTag: String, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        amqp_basic_cancel(state, channel, arena.bytes(consumerTag))
        try checkLastReply("cancelling consumer '\(consumerTag)'", channel: channel)
    }

    // MARK: Asynchronous operations (no reply expected)

    func publish(_ message: OutboundMessage, channel: UInt16) throws(AMQPError) {
        defer { arena.reset() }
        var properties = arena.properties(message.properties)
        let exchange = arena.bytes(message.exchange)
        let routingKey = arena.bytes(message.routingKey)
        let status = message.body.withUnsafeBytes { body in
            amqp_basic_publish(
                state, channel, exchange, routingKey, message.mandatory ? 1 : 0, 0, &properties,
                amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
        try checkStatus(status, "publishing to exchange '\(message.exchange)'")
    }

    func ack(_ tag: UInt64, multiple: Bool, channel: UInt16) throws(AMQPError) {
        try checkStatus(amqp_basic_ack(state, channel, tag, multiple ? 1 : 0), "acknowledging delivery \(tag)")
    }

    func nack(_ tag: UInt64, requeue: Bool, channel: UInt16) throws(AMQPError) {
        try checkStatus(amqp_basic_nack(state, channel, tag, 0, requeue ? 1 : 0), "rejecting delivery \(tag)")
    }

    func reject(_ tag: UInt64, requeue: Bool, channel: UInt16) throws(AMQPError) {
        try checkStatus(amqp_basic_reject(state, channel, tag, requeue ? 1 : 0), "rejecting delivery \(tag)")
    }

    private func sendChannelCloseOk(_ channel: UInt16) {
        var ok = amqp_channel_close_ok_t(dummy: 0)
        if amqp_send_method(state, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK.rawValue {
            isUsable = false
        }
    }

    private func sendConnectionCloseOk() {
        var ok = amqp_connection_close_ok_t(dummy: 0)
        _ = amqp_send_method(state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok)
        isUsable = false
    }

    /// Says goodbye to the broker; used only for a deliberate close.
    func close() {
        guard isUsable else { return }
        _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
        isUsable = false
    }

    // MARK: Reading

    /// The socket to wait on with `poll` when ``hasBufferedInput`` is false.
    var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    /// Whether librabbitmq already holds bytes or frames that `poll` on the socket would not report.
    var hasBufferedInput: Bool { amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 }

    /// Reads one event if one is available now, without blocking (beyond finishing a message
    /// whose first frame has arrived). Also sends heartbeats when due and notices a silent peer.
    func nextEvent() throws(AMQPError) -> Event? {
        amqp_maybe_release_buffers(state)
        // One microsecond, not zero: a zero timeout makes librabbitmq skip its heartbeat deadline check.
        var timeout = timeval(tv_sec: 0, tv_usec: 1)
        var envelope = amqp_envelope_t()
        let reply = amqp_consume_message(state, &envelope, &timeout, 0)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            defer { amqp_destroy_envelope(&envelope) }
            let message = envelope.message
            return .delivery(
                channel: envelope.channel, tag: envelope.delivery_tag, redelivered: envelope.redelivered != 0,
                exchange: CDecode.string(envelope.exchange), routingKey: CDecode.string(envelope.routing_key),
                properties: CDecode.properties(message.properties), body: CDecode.bytes(message.body))
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_TIMEOUT.rawValue:
            return nil
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue:
            return try nextFrameEvent()
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            isUsable = false
            if reply.library_error == AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue {
                throw AMQPError(.connectionLost, "no heartbeat from \(endpoint): the broker or the network is gone")
            }
            throw AMQPError(
                .connectionLost,
                "connection to \(endpoint) lost: \(String(cString: amqp_error_string2(reply.library_error)))")
        default:
            isUsable = false
            throw AMQPError(.library, "reading from \(endpoint) failed without a reason")
        }
    }

    /// Reads a non-delivery frame that ``nextEvent()`` left queued.
    private func nextFrameEvent() throws(AMQPError) -> Event? {
        var frame = amqp_frame_t()
        var timeout = timeval(tv_sec: 0, tv_usec: 1)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &timeout)
        if status == AMQP_STATUS_TIMEOUT.rawValue { return nil }
        try checkStatus(status, "reading a frame")
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return .ignored(method: 0) }
        let method = frame.payload.method
        let channel = frame.channel
        switch method.id {
        case AMQP_BASIC_ACK_METHOD:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            return .confirm(channel: channel, tag: ack.delivery_tag, multiple: ack.multiple != 0, acknowledged: true)
        case AMQP_BASIC_NACK_METHOD:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            return .confirm(channel: channel, tag: nack.delivery_tag, multiple: nack.multiple != 0, acknowledged: false)
        case AMQP_BASIC_RETURN_METHOD:
            let ret = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let replyText = CDecode.string(ret.reply_text)
            let exchange = CDecode.string(ret.exchange)
            let routingKey = CDecode.string(ret.routing_key)
            var message = amqp_message_t()
            let read = amqp_read_message(state, channel, &message, 0)
            defer { amqp_destroy_message(&message) }
            try check(read, "reading a returned message", channel: channel)
            return .returned(
                channel: channel, replyCode: ret.reply_code, replyText: replyText, exchange: exchange,
                routingKey: routingKey, messageId: CDecode.properties(message.properties).messageId)
        case AMQP_CHANNEL_CLOSE_METHOD:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let text = CDecode.string(close.reply_text)
            sendChannelCloseOk(channel)
            return .channelClosed(channel: channel, replyCode: close.reply_code, replyText: text)
        case AMQP_CONNECTION_CLOSE_METHOD:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let text = CDecode.string(close.reply_text)
            sendConnectionCloseOk()
            throw AMQPError(
                .connectionLost, "the broker at \(endpoint) closed the connection",
                replyCode: close.reply_code, replyText: text)
        case AMQP_BASIC_CANCEL_METHOD:
            return .consumerCancelled(channel: channel)
        case AMQP_CONNECTION_BLOCKED_METHOD:
            let blocked = method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            return .blocked(reason: CDecode.string(blocked.reason))
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            return .unblocked
        default:
            return .ignored(method: method.id)
        }
    }
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
