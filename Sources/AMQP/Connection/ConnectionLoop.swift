import Foundation
import Glibc
import Logging

/// The thread that owns one librabbitmq connection and does every `amqp_*` call on it.
///
/// Each pass: take the mailbox, run commands, send settlements, publish what the confirm window
/// allows, read what arrived; sleep in `poll` on the socket and the mailbox's eventfd only when
/// there was nothing to do. When the connection breaks it reconnects with jittered backoff,
/// declares the recorded topology again, resubscribes the consumers and resends every publish
/// that was not confirmed.
final class ConnectionLoop {
    private enum Phase {
        case connected
        case reconnecting(
            since: ContinuousClock.Instant, attempt: Int, next: ContinuousClock.Instant, lastError: AMQPError)
        case finished
    }

    private final class Consumer {
        let request: ConsumerRequest
        var channel: UInt16 = 0
        var subscribed = false
        /// Stopped gracefully: no new deliveries, but settlements of earlier ones still go out.
        var stopped = false
        var tracker = AckTracker()
        /// The `consume` call waiting for the subscription, if it is not answered yet.
        var starting: CheckedContinuation<Void, any Error>?

        init(_ request: ConsumerRequest, starting: CheckedContinuation<Void, any Error>) {
            self.request = request
            self.starting = starting
        }
    }

    private static let controlChannel: UInt16 = 1
    private static let publishChannel: UInt16 = 2
    private static let firstConsumerChannel: UInt16 = 3

    private let configuration: AMQPConfiguration
    private var logger: Logger
    private let mailbox: Mailbox
    private let clock = ContinuousClock()

    private var session: RabbitSession?
    private var generation = 0
    private var phase: Phase = .connected
    private var controlOpen = false
    private var publishOpen = false
    private var nextChannel = firstConsumerChannel

    private var topologies: [AMQPTopology] = []
    private var deferred: [Command] = []
    private var queued: [PendingPublish] = []
    private var queuedHead = 0
    private var window = ConfirmWindow()
    private var messageCounter: UInt64 = 0
    private let messageIdPrefix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    private var consumers: [Int: Consumer] = [:]
    private var consumerByChannel: [UInt16: Consumer] = [:]

    private var commandBuffer: [Command] = []
    private var settlementBuffer: [Settlement] = []
    private var closeContinuation: CheckedContinuation<Void, Never>?
    private var finalError = AMQPError(.closed, "the AMQP connection was closed")

    private init(configuration: AMQPConfiguration, logger: Logger, mailbox: Mailbox, session: RabbitSession) {
        self.configuration = configuration
        self.logger = logger
        self.mailbox = mailbox
        self.session = session
        self.logger[metadataKey: "amqp.broker"] = "\(configuration.host):\(configuration.port)"
    }

    /// Starts the thread, connects on it, and returns once the first connection is up or has failed.
    static func start(configuration: AMQPConfiguration, logger: Logger, mailbox: Mailbox) async throws {
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                let session: RabbitSession
                do throws(AMQPError) {
                    session = try RabbitSession(configuration)
                } catch {
                    for command in mailbox.finish(error) { command.fail(error) }
                    ready.resume(throwing: error)
                    return
                }
                let loop = ConnectionLoop(
                    configuration: configuration, logger: logger, mailbox: mailbox, session: session)
                ready.resume()
                loop.run()
            }
            thread.name = "amqp \(configuration.connectionName)"
            thread.start()
        }
    }

    // MARK: The loop

    private func run() {
        logger.debug("AMQP connection open", metadata: ["amqp.url": "\(configuration.redactedURL)"])
        while true {
            if case .finished = phase { break }
            mailbox.take(into: &commandBuffer, &settlementBuffer)
            var busy = !commandBuffer.isEmpty || !settlementBuffer.isEmpty
            // Settlements first: an ack queued before a cancel or a close must reach the broker.
            if case .connected = phase {
                do { try settle(settlementBuffer) } catch { connectionFailed(error) }
            }
            settlementBuffer.removeAll(keepingCapacity: true)
            for command in commandBuffer {
                if case .finished = phase { command.fail(finalError) } else { handle(command) }
            }
            commandBuffer.removeAll(keepingCapacity: true)
            switch phase {
            case .finished:
                break
            case .connected:
                do {
                    if try publishQueued() { busy = true }
                    if try readEvents() { busy = true }
                } catch {
                    connectionFailed(error)
                    busy = true
                }
            case .reconnecting(_, _, let next, _):
                if clock.now >= next {
                    reconnect()
                    busy = true
                }
            }
            if !busy { sleep() }
        }
        closeContinuation?.resume()
    }

    /// Waits in `poll` until the socket is readable, the mailbox has work, or a timer is due.
    private func sleep() {
        guard mailbox.prepareToSleep() else { return }
        var descriptors = [pollfd(fd: mailbox.wakeDescriptor, events: Int16(POLLIN), revents: 0)]
        var timeout: Int32 = 1_000
        switch phase {
        case .connected:
            guard let session, !session.hasBufferedInput else {
                mailbox.woke()
                return
            }
            descriptors.append(pollfd(fd: session.socketDescriptor, events: Int16(POLLIN), revents: 0))
        case .reconnecting(_, _, let next, _):
            let wait = clock.now.duration(to: next)
            timeout = max(
                0,
                min(
                    timeout,
                    Int32(wait.components.seconds * 1_000 + wait.components.attoseconds / 1_000_000_000_000_000)))
        case .finished:
            timeout = 0
        }
        _ = poll(&descriptors, nfds_t(descriptors.count), timeout)
        mailbox.woke()
    }

    // MARK: Commands

    private func handle(_ command: Command) {
        switch command {
        case .close(let continuation):
            if let continuation { closeContinuation = continuation }
            finish(nil)
        case .cancelConsumer(let id):
            cancelConsumer(id)
        case .stopConsumer(let id):
            stopConsumer(id)
        case .publish(let messages, let continuation):
            guard !messages.isEmpty else { return continuation.resume() }
            let batch = PublishBatch(count: messages.count, continuation: continuation)
            for var message in messages {
                if message.properties.messageId == nil {
                    messageCounter += 1
                    message.properties.messageId = "\(messageIdPrefix)-\(messageCounter)"
                }
                queued.append(PendingPublish(message: message, batch: batch))
            }
        case .consume(let request, let continuation):
            let consumer = Consumer(request, starting: continuation)
            consumers[request.id] = consumer
            guard case .connected = phase else { return }
            do { try subscribe(consumer) } catch { connectionFailed(error) }
        case .declare, .checkTopology, .queueCounts, .deleteQueue, .purgeQueue, .deleteExchange:
            guard case .connected = phase, let session else { return deferred.append(command) }
            do {
                try perform(command, on: session)
            } catch {
                if error.code == .channelClosed {
                    controlOpen = false
                } else {
                    connectionFailed(error)
                    // Lost under it (a broker restart, an operator closing connections): sent again
                    // once the connection is back, as if it had arrived a moment later.
                    if command.isRepeatable, Self.lostOnItsOwn(error), case .reconnecting = phase {
                        return deferred.append(command)
                    }
                }
                command.fail(error)
            }
        }
    }

    private func perform(_ command: Command, on session: RabbitSession) throws(AMQPError) {
        let channel = Self.controlChannel
        if !controlOpen {
            try session.openChannel(channel)
            controlOpen = true
        }
        switch command {
        case .declare(let topology, let continuation):
            try declare(topology, on: session)
            if !topologies.contains(topology) { topologies.append(topology) }
            continuation.resume()
        case .checkTopology(let topology, let continuation):
            for exchange in topology.exchanges { try session.declarePassive(exchange: exchange.name, channel: channel) }
            for queue in topology.queues { _ = try session.declarePassive(queue: queue.name, channel: channel) }
            continuation.resume()
        case .queueCounts(let queue, let continuation):
            continuation.resume(returning: try session.declarePassive(queue: queue, channel: channel))
        case .deleteQueue(let queue, let continuation):
            continuation.resume(returning: try session.deleteQueue(queue, channel: channel))
        case .purgeQueue(let queue, let continuation):
            continuation.resume(returning: try session.purgeQueue(queue, channel: channel))
        case .deleteExchange(let exchange, let continuation):
            try session.deleteExchange(exchange, channel: channel)
            continuation.resume()
        default:
            preconditionFailure("not a control-channel command")
        }
    }

    private func declare(_ topology: AMQPTopology, on session: RabbitSession) throws(AMQPError) {
        for exchange in topology.exchanges { try session.declare(exchange, channel: Self.controlChannel) }
        for queue in topology.queues { try session.declare(queue, channel: Self.controlChannel) }
        for binding in topology.bindings { try session.bind(binding, channel: Self.controlChannel) }
    }

    // MARK: Consumers

    private func subscribe(_ consumer: Consumer) throws(AMQPError) {
        guard let session else { return }
        let channel = nextChannel
        nextChannel += 1
        do {
            try session.openChannel(channel)
            try session.setPrefetch(consumer.request.prefetch, channel: channel)
            try session.consume(
                queue: consumer.request.queue, consumerTag: "jsm-\(consumer.request.id)", channel: channel)
        } catch  where error.code == .channelClosed {
            // The queue is missing or refuses us: this consumer ends, the connection lives on.
            consumers[consumer.request.id] = nil
            consumer.request.deliveries.finish(throwing: error)
            consumer.starting?.resume(throwing: error)
            consumer.starting = nil
            return
        }
        consumer.channel = channel
        consumer.subscribed = true
        consumer.tracker = AckTracker()
        consumerByChannel[channel] = consumer
        consumer.starting?.resume()
        consumer.starting = nil
    }

    private func cancelConsumer(_ id: Int) {
        guard let consumer = consumers.removeValue(forKey: id) else { return }
        consumer.request.deliveries.finish()
        consumer.starting?.resume(throwing: AMQPError(.closed, "consumer of '\(consumer.request.queue)' cancelled"))
        guard consumer.subscribed, case .connected = phase, let session else { return }
        consumerByChannel[consumer.channel] = nil
        // Closing the channel hands every unacknowledged delivery back to the queue.
        session.closeChannel(consumer.channel)
        if !session.isUsable {
            connectionFailed(AMQPError(.connectionLost, "connection lost while cancelling a consumer"))
        }
    }

    /// Asks the broker for no more deliveries and ends the stream once what arrived is handed out;
    /// the channel stays open until ``cancelConsumer(_:)``, so in-flight deliveries can be acked.
    private func stopConsumer(_ id: Int) {
        guard let consumer = consumers[id], !consumer.stopped else { return }
        consumer.stopped = true
        consumer.request.deliveries.finish()
        consumer.starting?.resume(throwing: AMQPError(.closed, "consumer of '\(consumer.request.queue)' stopped"))
        consumer.starting = nil
        guard consumer.subscribed, case .connected = phase, let session else { return }
        do {
            try session.cancelConsume(consumerTag: "jsm-\(consumer.request.id)", channel: consumer.channel)
        } catch {
            if error.code == .channelClosed {
                // The channel is gone, and with it every unacknowledged delivery (requeued).
                consumers[id] = nil
                consumerByChannel[consumer.channel] = nil
            } else {
                connectionFailed(error)
            }
        }
    }

    private func endConsumer(_ consumer: Consumer, _ error: AMQPError) {
        consumers[consumer.request.id] = nil
        consumerByChannel[consumer.channel] = nil
        consumer.request.deliveries.finish(throwing: error)
    }

    private func settle(_ settlements: [Settlement]) throws(AMQPError) {
        guard !settlements.isEmpty, let session else { return }
        var acked: [Consumer] = []
        for settlement in settlements {
            // A settlement from before a reconnect is void: the broker has requeued that delivery.
            guard settlement.generation == generation, let consumer = consumers[settlement.consumerID],
                consumer.subscribed
            else { continue }
            switch settlement.kind {
            case .ack:
                consumer.tracker.acked(settlement.tag)
                if !acked.contains(where: { $0 === consumer }) { acked.append(consumer) }
            case .nackRequeue, .nackDiscard:
                try session.nack(settlement.tag, requeue: settlement.kind == .nackRequeue, channel: consumer.channel)
                consumer.tracker.sent(settlement.tag)
            case .rejectRequeue, .rejectDiscard:
                try session.reject(
                    settlement.tag, requeue: settlement.kind == .rejectRequeue, channel: consumer.channel)
                consumer.tracker.sent(settlement.tag)
            }
        }
        for consumer in acked {
            let (upTo, single) = consumer.tracker.drain()
            if let upTo { try session.ack(upTo, multiple: true, channel: consumer.channel) }
            for tag in single { try session.ack(tag, multiple: false, channel: consumer.channel) }
        }
    }

    // MARK: Publishing

    /// Publishes queued messages while the confirm window has room; true when it sent any.
    private func publishQueued() throws(AMQPError) -> Bool {
        guard queuedHead < queued.count, let session else { return false }
        if !publishOpen {
            try session.openChannel(Self.publishChannel)
            try session.selectConfirms(Self.publishChannel)
            publishOpen = true
        }
        var sent = 0
        while queuedHead < queued.count, window.count < configuration.maxUnconfirmedPublishes, sent < 512 {
            let publish = queued[queuedHead]
            queuedHead += 1
            // Into the window first: if the write fails, the reconnect resends it.
            window.append(publish)
            try session.publish(publish.message, channel: Self.publishChannel)
            sent += 1
        }
        if queuedHead == queued.count {
            queued.removeAll(keepingCapacity: true)
            queuedHead = 0
        }
        return sent > 0
    }

    private func confirm(tag: UInt64, multiple: Bool, acknowledged: Bool) {
        for publish in window.resolve(tag: tag, multiple: multiple) {
            if !acknowledged {
                publish.batch.settle(
                    AMQPError(
                        .publishNacked,
                        "the broker refused message '\(publish.message.properties.messageId ?? "")' for exchange '\(publish.message.exchange)'"
                    ))
            } else {
                publish.batch.settle(publish.returned)
            }
        }
    }

    /// The broker closed the publishing channel (for example 404: no such exchange). The messages
    /// for the exchange it names fail; every other unconfirmed message is published again.
    private func publishChannelClosed(replyCode: UInt16, replyText: String) {
        publishOpen = false
        let unconfirmed = window.reset()
        let error = AMQPError(.channelClosed, "publishing failed", replyCode: replyCode, replyText: replyText)
        // 404 names the missing exchange ("no exchange 'x' in vhost '/'"). When no unconfirmed message
        // targets the exchange named, the culprit is unknown and every unconfirmed message fails:
        // resending them could close the channel again, forever.
        let named = replyText.split(separator: "'").dropFirst().first.map(String.init)
        let culprit = unconfirmed.contains { $0.message.exchange == named } ? named : nil
        var retry: [PendingPublish] = []
        for publish in unconfirmed {
            if culprit == nil || publish.message.exchange == culprit {
                publish.batch.settle(error)
            } else {
                retry.append(publish)
            }
        }
        var stillQueued: [PendingPublish] = []
        for publish in queued[queuedHead...] {
            if let culprit, publish.message.exchange == culprit {
                publish.batch.settle(error)
            } else {
                stillQueued.append(publish)
            }
        }
        queued = retry + stillQueued
        queuedHead = 0
        logger.error("AMQP publish channel closed by the broker", metadata: ["error": "\(error)"])
    }

    // MARK: Reading

    /// Reads what has arrived, up to a bound so commands are not starved; true when it read any.
    private func readEvents() throws(AMQPError) -> Bool {
        guard let session else { return false }
        var count = 0
        while count < 256, let event = try session.nextEvent() {
            count += 1
            switch event {
            case .delivery(
                let channel, let tag, let redelivered, let exchange, let routingKey, let properties, let body):
                guard let consumer = consumerByChannel[channel] else { continue }
                consumer.tracker.delivered(tag)
                if consumer.stopped {
                    // Sent before the broker saw the cancel: straight back to the queue.
                    try session.reject(tag, requeue: true, channel: channel)
                    consumer.tracker.sent(tag)
                    continue
                }
                consumer.request.deliveries.yield(
                    AMQPDelivery(
                        body: body, properties: properties, exchange: exchange, routingKey: routingKey,
                        redelivered: redelivered, deliveryTag: tag,
                        settlement: DeliverySettlement(
                            mailbox: mailbox, consumerID: consumer.request.id, generation: generation)))
            case .confirm(_, let tag, let multiple, let acknowledged):
                confirm(tag: tag, multiple: multiple, acknowledged: acknowledged)
            case .returned(_, let replyCode, let replyText, let exchange, let routingKey, let messageId):
                window.markReturned(
                    messageId: messageId,
                    error: AMQPError(
                        .unroutable,
                        "message '\(messageId ?? "")' to exchange '\(exchange)' with routing key '\(routingKey)' reached no queue",
                        replyCode: replyCode, replyText: replyText))
            case .channelClosed(let channel, let replyCode, let replyText):
                if channel == Self.publishChannel {
                    publishChannelClosed(replyCode: replyCode, replyText: replyText)
                } else if channel == Self.controlChannel {
                    controlOpen = false
                } else if let consumer = consumerByChannel[channel] {
                    endConsumer(
                        consumer,
                        AMQPError(
                            .channelClosed, "consuming from '\(consumer.request.queue)' stopped",
                            replyCode: replyCode, replyText: replyText))
                }
            case .consumerCancelled(let channel):
                if let consumer = consumerByChannel[channel] {
                    session.closeChannel(channel)
                    endConsumer(
                        consumer,
                        AMQPError(
                            .channelClosed,
                            "the broker cancelled the consumer of '\(consumer.request.queue)' (queue deleted?)"))
                }
            case .blocked(let reason):
                logger.warning("AMQP broker blocks publishing", metadata: ["reason": "\(reason)"])
            case .unblocked:
                logger.info("AMQP broker unblocked publishing")
            case .ignored:
                break
            }
        }
        return count > 0
    }

    // MARK: Losing and regaining the connection

    private func connectionFailed(_ error: AMQPError) {
        guard case .connected = phase else { return }
        logger.warning("AMQP connection lost; reconnecting", metadata: ["error": "\(error)"])
        session = nil
        generation += 1
        controlOpen = false
        publishOpen = false
        nextChannel = Self.firstConsumerChannel
        consumerByChannel.removeAll()
        // A stopped consumer's deliveries went back to the queue with the connection; it is not resubscribed.
        consumers = consumers.filter { !$0.value.stopped }
        for consumer in consumers.values { consumer.subscribed = false }
        queued = window.reset() + queued[queuedHead...]
        queuedHead = 0
        guard configuration.reconnectGiveUpAfter != nil else { return finish(error) }
        let now = clock.now
        phase = .reconnecting(since: now, attempt: 0, next: now + configuration.reconnectInitialDelay, lastError: error)
    }

    /// Whether the connection went for a reason of its own: the socket broke, or the broker closed
    /// it with 320 CONNECTION_FORCED (shutdown, `rabbitmqctl close_connection`). Any other reply
    /// code on a connection close is a hard error the request itself caused (e.g. 503
    /// COMMAND_INVALID), and would come back on every new connection.
    private static func lostOnItsOwn(_ error: AMQPError) -> Bool {
        error.code == .connectionLost && (error.replyCode == nil || error.replyCode == 320)
    }

    private func reconnect() {
        guard case .reconnecting(let since, let attempt, _, _) = phase else { return }
        do {
            session = try RabbitSession(configuration)
            phase = .connected
            try restore()
            logger.info("AMQP connection restored", metadata: ["attempts": "\(attempt + 1)"])
            let waiting = deferred
            deferred.removeAll()
            for command in waiting { handle(command) }
        } catch {
            session = nil
            let now = clock.now
            if let giveUp = configuration.reconnectGiveUpAfter, since.duration(to: now) > giveUp {
                return finish(
                    AMQPError(
                        .connectionLost,
                        "gave up reconnecting to \(configuration.host):\(configuration.port) after \(giveUp); last error: \(error)"
                    ))
            }
            let base = configuration.reconnectInitialDelay * (1 << min(attempt + 1, 16))
            let delay = min(base, configuration.reconnectMaxDelay) * Double.random(in: 0.5...1.0)
            logger.debug("AMQP reconnect failed", metadata: ["error": "\(error)", "attempt": "\(attempt + 1)"])
            phase = .reconnecting(since: since, attempt: attempt + 1, next: now + delay, lastError: error)
        }
    }

    /// Declares the recorded topology again and resubscribes the consumers on a fresh connection.
    private func restore() throws(AMQPError) {
        guard let session else { return }
        for topology in topologies {
            do {
                if !controlOpen {
                    try session.openChannel(Self.controlChannel)
                    controlOpen = true
                }
                try declare(topology, on: session)
            } catch  where error.code == .channelClosed {
                controlOpen = false
                logger.error("AMQP topology could not be declared again", metadata: ["error": "\(error)"])
            }
        }
        for consumer in consumers.values.sorted(by: { $0.request.id < $1.request.id }) {
            try subscribe(consumer)
        }
    }

    /// Ends the loop: a deliberate close when `error` is nil, otherwise a permanent failure.
    private func finish(_ error: AMQPError?) {
        let reason = error ?? finalError
        finalError = reason
        if error == nil {
            session?.close()
        } else {
            logger.error("AMQP connection failed for good", metadata: ["error": "\(reason)"])
        }
        session = nil
        phase = .finished
        for publish in window.reset() + queued[queuedHead...] { publish.batch.settle(reason) }
        queued.removeAll()
        queuedHead = 0
        for command in deferred { command.fail(reason) }
        deferred.removeAll()
        for consumer in consumers.values {
            if error == nil {
                consumer.request.deliveries.finish()
            } else {
                consumer.request.deliveries.finish(throwing: reason)
            }
            consumer.starting?.resume(throwing: reason)
            consumer.starting = nil
        }
        consumers.removeAll()
        consumerByChannel.removeAll()
        for command in mailbox.finish(reason) { command.fail(reason) }
    }
}
