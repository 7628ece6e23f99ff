import AMQP
import ServiceLifecycle
import Synchronization

/// A graceful stop for a process's consumers (swift-service-lifecycle's graceful shutdown):
/// the broker sends nothing more, deliveries received but not started go straight back to their
/// queue, in-flight ones finish and are acked; the channels close once the run is over.
///
/// If the shutdown outlasts its deadline, the service group cancels the run instead, and what
/// is still in flight goes back to its queue unacked (processed again, idempotently).
final class ConsumerDrain: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let consumers: [AMQPConsumer]

    private init(_ consumers: [AMQPConsumer]) { self.consumers = consumers }

    /// True once the graceful shutdown has begun: a delivery taken now is returned, not started.
    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    private func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for consumer in consumers { consumer.stop() }
    }

    /// Runs `body` over `consumers`; a graceful shutdown stops them, and when `body` ends (however
    /// it ends) every consumer is cancelled, which returns anything unsettled to its queue.
    static func run<T: Sendable>(
        _ consumers: [AMQPConsumer], _ body: @Sendable (ConsumerDrain) async throws -> T
    ) async throws -> T {
        let drain = ConsumerDrain(consumers)
        defer {
            for consumer in consumers { consumer.cancel() }
        }
        return try await withGracefulShutdownHandler {
            try await body(drain)
        } onGracefulShutdown: {
            drain.stop()
        }
    }
}
