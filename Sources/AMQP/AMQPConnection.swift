import Logging
import Synchronization

/// A connection to RabbitMQ that survives broker restarts.
///
/// Every `amqp_*` call for this connection runs on one dedicated thread (librabbitmq connections
/// must never be shared between threads); this handle is `Sendable` and only posts requests to it.
/// Blocking network waits therefore never occupy Swift's cooperative thread pool.
///
/// - Declarations are remembered and declared again after a reconnect. A declare, check or queue
///   count under way when the connection is lost waits for the reconnect and runs again; a delete
///   or purge fails instead, since it may have happened.
/// - ``publish(_:)`` returns once the broker has confirmed every message; messages unconfirmed
///   when the connection broke are published again on the next connection (at-least-once:
///   consumers de-duplicate by message id or by the contract's batch id).
/// - ``consume(queue:prefetch:)`` yields deliveries to settle with ack, nack or reject; after a
///   reconnect the consumer resubscribes and the broker redelivers what was not acked.
public final class AMQPConnection: Sendable {
    private let mailbox: Mailbox
    private let nextConsumerID = Atomic<Int>(1)
    /// The settings this connection was opened with.
    public let configuration: AMQPConfiguration

    private init(configuration: AMQPConfiguration, mailbox: Mailbox) {
        self.configuration = configuration
        self.mailbox = mailbox
    }

    /// A connection nobody holds any more ends its thread; consumers finish and pending publishes fail.
    deinit {
        mailbox.submit(.close(nil))
    }

    /// Connects and logs in. Fails fast, with an error naming the cause, when the broker is
    /// unreachable, refuses the credentials or the TLS handshake fails; reconnection applies only
    /// to a connection that was once established.
    public static func connect(
        _ configuration: AMQPConfiguration, logger: Logger = Logger(label: "jsm.amqp")
    ) async throws(AMQPError) -> AMQPConnection {
        let mailbox = Mailbox()
        do {
            try await ConnectionLoop.start(configuration: configuration, logger: logger, mailbox: mailbox)
        } catch let error as AMQPError {
            throw error
        } catch {
            throw AMQPError(.library, "unexpected failure while connecting: \(error)")
        }
        return AMQPConnection(configuration: configuration, mailbox: mailbox)
    }

    private func request<T: Sendable>(_ make: (CheckedContinuation<T, any Error>) -> Command) async throws(AMQPError)
        -> T
    {
        do {
            return try await withCheckedThrowingContinuation { mailbox.submit(make($0)) }
        } catch let error as AMQPError {
            throw error
        } catch {
            throw AMQPError(.library, "unexpected failure: \(error)")
        }
    }

    /// Declares exchanges, queues and bindings, and remembers them for reconnects.
    ///
    /// A queue that already exists with other arguments makes the broker answer 406
    /// PRECONDITION_FAILED: that arrives here as a ``AMQPError/Code/channelClosed`` error naming the queue.
    public func declare(_ topology: AMQPTopology) async throws(AMQPError) {
        try await request { .declare(topology, $0) }
    }

    /// Checks that every exchange and queue of `topology` exists, by passive declares: nothing is
    /// declared or remembered, so a user without `configure` permission can run it. A missing one
    /// fails with 404 naming it. Arguments and bindings cannot be checked this way.
    public func check(_ topology: AMQPTopology) async throws(AMQPError) {
        try await request { .checkTopology(topology, $0) }
    }

    /// Ready messages and consumers of a queue, by passive declare (404 when it does not exist).
    /// Messages delivered to consumers and not yet acknowledged are not counted as ready.
    public func queueCounts(_ queue: String) async throws(AMQPError) -> QueueCounts {
        try await request { .queueCounts(queue, $0) }
    }

    /// Deletes a queue and returns how many messages it held.
    @discardableResult
    public func deleteQueue(_ queue: String) async throws(AMQPError) -> UInt32 {
        try await request { .deleteQueue(queue, $0) }
    }

    /// Removes every ready message of a queue and returns how many there were.
    @discardableResult
    public func purgeQueue(_ queue: String) async throws(AMQPError) -> UInt32 {
        try await request { .purgeQueue(queue, $0) }
    }

    /// Deletes an exchange.
    public func deleteExchange(_ exchange: String) async throws(AMQPError) {
        try await request { .deleteExchange(exchange, $0) }
    }

    /// Publishes messages and returns when the broker has confirmed all of them.
    ///
    /// Messages go out in order, at most ``AMQPConfiguration/maxUnconfirmedPublishes`` unconfirmed
    /// at a time across all callers. Throws the first failure once every message is settled:
    /// ``AMQPError/Code/unroutable`` for a mandatory message no queue took,
    /// ``AMQPError/Code/publishNacked`` when the broker refused one. Several calls may run
    /// concurrently; that is how a producer keeps the window full.
    public func publish(_ messages: [OutboundMessage]) async throws(AMQPError) {
        try await request { .publish(messages, $0) }
    }

    /// Publishes one message and waits for its confirm.
    public func publish(_ message: OutboundMessage) async throws(AMQPError) {
        try await publish([message])
    }

    /// Starts consuming with manual acknowledgements and at most `prefetch` unacknowledged deliveries.
    ///
    /// Fails at once when the queue does not exist. Ending the iteration (or dropping the
    /// consumer) cancels it, and the broker requeues whatever was not settled.
    public func consume(queue: String, prefetch: UInt16 = 100) async throws(AMQPError) -> AMQPConsumer {
        let id = nextConsumerID.add(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncThrowingStream<AMQPDelivery, any Error>.makeStream()
        let mailbox = self.mailbox
        // A stream ended by ``AMQPConsumer/stop()`` keeps its channel until ``AMQPConsumer/cancel()``;
        // one abandoned by its reader (cancelled or dropped) closes at once.
        continuation.onTermination = { termination in
            if case .cancelled = termination { mailbox.submit(.cancelConsumer(id)) }
        }
        let consumerRequest = ConsumerRequest(id: id, queue: queue, prefetch: prefetch, deliveries: continuation)
        try await request { .consume(consumerRequest, $0) }
        return AMQPConsumer(
            stream: stream, stop: { mailbox.submit(.stopConsumer(id)) }, cancel: { mailbox.submit(.cancelConsumer(id)) }
        )
    }

    /// Closes the connection; pending publishes fail, consumers finish, the thread ends.
    public func close() async {
        await withCheckedContinuation { mailbox.submit(.close($0)) }
    }
}

/// Deliveries from one queue, in the order the broker sent them.
///
/// The sequence ends when the consumer is cancelled or the connection is closed, and throws when
/// the broker ends the consumer (queue deleted) or the connection is lost for good.
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    public typealias Failure = any Error

    private let stream: AsyncThrowingStream<AMQPDelivery, any Error>
    private let stopAction: @Sendable () -> Void
    private let cancelAction: @Sendable () -> Void

    init(
        stream: AsyncThrowingStream<AMQPDelivery, any Error>, stop: @escaping @Sendable () -> Void,
        cancel: @escaping @Sendable () -> Void
    ) {
        self.stream = stream
        self.stopAction = stop
        self.cancelAction = cancel
    }

    /// Cancels the consumer and closes its channel; unsettled deliveries go back to the queue.
    public func cancel() { cancelAction() }

    /// Stops consuming gracefully, for a shutdown that finishes its in-flight work: the broker sends
    /// nothing more (basic.cancel), the sequence ends after the deliveries already received, and
    /// those can still be acked, nacked or rejected. A delivery the broker sent before it saw the
    /// cancel goes straight back to the queue. Call ``cancel()`` once they are settled.
    public func stop() { stopAction() }

    /// Iterates the deliveries.
    public func makeAsyncIterator() -> AsyncThrowingStream<AMQPDelivery, any Error>.AsyncIterator {
        stream.makeAsyncIterator()
    }
}
