import AMQP
import Foundation
import Synchronization
import Testing

/// The connection survives what operators and brokers do to it.
///
/// These tests close every connection of the broker or stop the broker application, so they run
/// one after another, and after the round-trip suite, never beside other broker tests.
extension BrokerSuite {
    @Suite("AMQP reconnection against the real RabbitMQ")
    struct ReconnectTests {
        @Test("a consumer keeps receiving after rabbitmqctl close_all_connections")
        func consumerSurvivesClosedConnections() async throws {
            let publisher = try await TestBroker.connect()
            let consumerConnection = try await TestBroker.connect()
            let queue = TestBroker.uniqueName("survivor")
            let topology = AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)])
            try await publisher.declare(topology)
            try await consumerConnection.declare(topology)
            let collector = DeliveryCollector(try await consumerConnection.consume(queue: queue, prefetch: 20))
            try await publisher.publish(numberedMessages(10, queue: queue, tag: "before"))
            _ = try await collector.waitFor(10)

            try TestBroker.rabbitmqctl("close_all_connections", "test: connections closed on purpose")

            // Both sides reconnect by themselves; the publish waits for it and the consumer resubscribes.
            try await publisher.publish(numberedMessages(10, queue: queue, tag: "after"))
            let all = try await collector.waitFor(20, within: .seconds(60))
            let ids = Set(all.compactMap(\.properties.messageId))
            for index in 0..<10 {
                #expect(ids.contains("before-\(index)"))
                #expect(ids.contains("after-\(index)"))
            }
            #expect(collector.error == nil)
            collector.stop()
            try await publisher.deleteQueue(queue)
            await publisher.close()
            await consumerConnection.close()
        }

        @Test("a consumer keeps receiving after the broker application is stopped and started")
        func consumerSurvivesBrokerRestart() async throws {
            let connection = try await TestBroker.connect()
            let queue = TestBroker.uniqueName("restart")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
            let collector = DeliveryCollector(try await connection.consume(queue: queue, prefetch: 20))
            try await connection.publish(numberedMessages(5, queue: queue, tag: "before"))
            _ = try await collector.waitFor(5)

            try TestBroker.rabbitmqctl("stop_app")
            defer { _ = try? TestBroker.rabbitmqctl("start_app") }
            try await Task.sleep(for: .seconds(1))
            try TestBroker.rabbitmqctl("start_app")
            try TestBroker.rabbitmqctl("await_startup")

            try await connection.publish(numberedMessages(5, queue: queue, tag: "after"))
            let all = try await collector.waitFor(10, within: .seconds(90))
            let ids = Set(all.compactMap(\.properties.messageId))
            #expect((0..<5).allSatisfy { ids.contains("after-\($0)") })
            #expect(collector.error == nil)
            collector.stop()
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test("declares and queue counts under way when every connection is closed wait for the reconnect and succeed")
        func controlRequestsSurviveClosedConnections() async throws {
            let name = TestBroker.uniqueName("redeclare")
            let connection = try await TestBroker.connect { $0.connectionName = name }
            // Forty queues per declare keep the connection inside a declare nearly all the time,
            // so the broker's close lands in the middle of one (before the fix, that declare failed
            // with 320 CONNECTION_FORCED; CI failed that way when a worker started during a restart).
            let queues = (0..<40).map { QueueSpec(name: "\(name)-\($0)", extraArguments: TestBroker.expiry) }
            let topology = AMQPTopology(queues: queues)
            try await connection.declare(topology)
            let before = try Self.brokerConnections(named: name)
            #expect(before.count == 1)

            let closed = ClosedFlag()
            let closing = Task.detached {
                defer { closed.set() }
                try TestBroker.rabbitmqctl("close_all_connections", "test: closed under a declare")
            }
            var roundsAfterClose = 0
            let deadline = ContinuousClock.now + .seconds(60)
            for _ in 0..<5_000 {
                guard roundsAfterClose < 3, ContinuousClock.now < deadline else { break }
                let startedAfterClose = closed.isSet
                try await connection.declare(topology)
                #expect(try await connection.queueCounts(queues[0].name).ready == 0)
                if startedAfterClose { roundsAfterClose += 1 }
            }
            try await closing.value
            #expect(roundsAfterClose == 3, "the declares went on after the close")
            let after = try Self.brokerConnections(named: name)
            #expect(
                after.count == 1 && after != before, "the connection was closed and opened again: \(before) → \(after)")
            for queue in queues { try await connection.deleteQueue(queue.name) }
            await connection.close()
        }

        @Test("a publisher resends what the broker had not confirmed when the connection broke")
        func publisherResendsUnconfirmed() async throws {
            let observer = try await TestBroker.connect()
            let publisher = try await TestBroker.connect()
            let queue = TestBroker.uniqueName("resend")
            try await observer.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))

            // A memory alarm makes the broker stop reading from publishers: nothing gets confirmed.
            try TestBroker.rabbitmqctl("set_vm_memory_high_watermark", "0")
            defer { _ = try? TestBroker.rabbitmqctl("set_vm_memory_high_watermark", "0.4") }
            let publishing = Task { try await publisher.publish(numberedMessages(500, queue: queue, tag: "held")) }
            try await Task.sleep(for: .seconds(1))
            #expect(try await observer.queueCounts(queue).ready == 0, "the alarm should hold every message back")

            try TestBroker.rabbitmqctl("close_all_connections", "test: drop unconfirmed publishes")
            try TestBroker.rabbitmqctl("set_vm_memory_high_watermark", "0.4")

            // The publish completes only because the unconfirmed messages were sent again.
            try await publishing.value
            try await eventually("all 500 messages in the queue") { try await observer.queueCounts(queue).ready >= 500 }
            let collector = DeliveryCollector(try await observer.consume(queue: queue, prefetch: 200))
            let delivered = try await collector.waitFor(500)
            let ids = Set(delivered.compactMap(\.properties.messageId))
            #expect(ids.count == 500)
            #expect((0..<500).allSatisfy { ids.contains("held-\($0)") })
            collector.stop()
            try await observer.deleteQueue(queue)
            await observer.close()
            await publisher.close()
        }

        /// The broker's process ids of the connections whose client named itself `name`.
        static func brokerConnections(named name: String) throws -> [String] {
            let listing = try TestBroker.rabbitmqctl(
                "list_connections", "-q", "--no-table-headers", "pid", "client_properties")
            return listing.split(separator: "\n").filter { $0.contains("\"\(name)\"") }.compactMap {
                $0.split(separator: "\t").first.map(String.init)
            }
        }
    }
}

/// Set once `rabbitmqctl close_all_connections` has returned.
private final class ClosedFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}
