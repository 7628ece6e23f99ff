import AMQP
import Foundation
import Testing

/// Publishing, consuming, dead-lettering and counting against the real broker.
extension BrokerSuite {
    @Suite("AMQP against the real RabbitMQ")
    struct BrokerRoundTripTests {
        @Test("a confirmed publish then consume keeps the body and every property")
        func roundTripKeepsBodyAndProperties() async throws {
            let connection = try await TestBroker.connect()
            let queue = TestBroker.uniqueName("roundtrip")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
            let body = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let headers: AMQPTable = [
                "x-schema-version": .int32(1), "x-migration-id": .string("mig-42"), "x-attempt": .int64(3),
                "flag": .bool(true), "ratio": .double(0.25), "raw": .bytes([0, 1, 2, 255]),
                "nested": .table(["list": .array([.string("a"), .int64(-7)])]),
            ]
            let properties = AMQPProperties(
                contentType: "application/x-protobuf", headers: headers, persistent: true, correlationId: "batch-7",
                replyTo: "jsm.results", messageId: "msg-1", timestamp: 1_764_000_000, type: "MigrateIdentities",
                appId: "jsm-migrate")
            try await connection.publish(OutboundMessage(routingKey: queue, body: body, properties: properties))

            let collector = DeliveryCollector(try await connection.consume(queue: queue, prefetch: 10))
            let delivery = try #require(try await collector.waitFor(1).first)
            #expect(delivery.body == body)
            #expect(delivery.properties == properties)
            #expect(delivery.routingKey == queue)
            #expect(delivery.exchange == "")
            #expect(!delivery.redelivered)
            collector.stop()
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test("a gracefully stopped consumer gets nothing more, and still acks what it was handed before the stop")
        func stoppedConsumerStillAcks() async throws {
            let connection = try await TestBroker.connect()
            let queue = TestBroker.uniqueName("graceful-stop")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
            try await connection.publish(numberedMessages(10, queue: queue))
            let consumer = try await connection.consume(queue: queue, prefetch: 4)
            var iterator = consumer.makeAsyncIterator()
            let inFlight = try #require(try await iterator.next())
            consumer.stop()
            // The sequence ends after what was already received: at most the prefetch window.
            var received: [AMQPDelivery] = []
            for _ in 0..<10 {
                guard let delivery = try await iterator.next() else { break }
                received.append(delivery)
            }
            #expect(received.count <= 3, "a stopped consumer kept receiving: \(received.count) more")
            // rabbitmqctl lists the consumer gone at once; the passive-declare count was seen to lag.
            try await eventually("the broker dropped the consumer") {
                try !TestBroker.rabbitmqctl("list_consumers", "queue_name").contains(queue)
            }
            // The channel is still open: the ack of the in-flight message and the returns reach the broker.
            inFlight.ack()
            for delivery in received { delivery.reject(requeue: true) }
            try await eventually("the nine unacknowledged messages are ready again") {
                try await connection.queueCounts(queue).ready == 9
            }
            consumer.cancel()
            #expect(try await connection.queueCounts(queue).ready == 9)
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test("a publish to a missing exchange fails with 404 while other publishes in flight still land")
        func missingExchangeFailsOnlyItsPublish() async throws {
            let connection = try await TestBroker.connect()
            let queue = TestBroker.uniqueName("beside-404")
            let missing = TestBroker.uniqueName("no-such-exchange")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
            let good = Task { try await connection.publish(numberedMessages(300, queue: queue, tag: "good")) }
            let bad = Task {
                try await connection.publish(OutboundMessage(exchange: missing, routingKey: "x", body: [1]))
            }
            let badError = await #expect(throws: AMQPError.self) { try await bad.value }
            #expect(badError?.replyCode == 404)
            #expect(badError?.replyText?.contains(missing) == true)
            try await good.value
            let collector = DeliveryCollector(try await connection.consume(queue: queue, prefetch: 100))
            let ids = Set(try await collector.waitFor(300).compactMap(\.properties.messageId))
            #expect(ids == Set((0..<300).map { "good-\($0)" }))
            collector.stop()
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test("a mandatory message that no queue takes fails the publish as unroutable")
        func unroutableMandatoryMessageFails() async throws {
            let connection = try await TestBroker.connect()
            let error = await #expect(throws: AMQPError.self) {
                try await connection.publish(OutboundMessage(routingKey: TestBroker.uniqueName("nowhere"), body: [1]))
            }
            #expect(error?.code == .unroutable)
            #expect(error?.replyCode == 312)
            // The connection is still usable afterwards.
            let queue = TestBroker.uniqueName("after-return")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
            try await connection.publish(OutboundMessage(routingKey: queue, body: [2]))
            #expect(try await connection.queueCounts(queue).ready == 1)
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test("a nack without requeue lands in the dead-letter queue with its x-death header")
        func nackWithoutRequeueIsDeadLettered() async throws {
            let connection = try await TestBroker.connect()
            let work = TestBroker.uniqueName("work")
            let deadExchange = TestBroker.uniqueName("dlx")
            let dead = TestBroker.uniqueName("dead")
            try await connection.declare(
                AMQPTopology(
                    exchanges: [ExchangeSpec(name: deadExchange, kind: .fanout, durable: false)],
                    queues: [
                        QueueSpec(name: work, deadLetterExchange: deadExchange, extraArguments: TestBroker.expiry),
                        QueueSpec(name: dead, extraArguments: TestBroker.expiry),
                    ],
                    bindings: [BindingSpec(queue: dead, exchange: deadExchange, routingKey: "")]))
            try await connection.publish(
                OutboundMessage(
                    routingKey: work, body: Array("poison".utf8), properties: AMQPProperties(messageId: "poison-1")))

            let rejecting = DeliveryCollector(try await connection.consume(queue: work)) { _ in .nackDiscard }
            _ = try await rejecting.waitFor(1)
            let parked = DeliveryCollector(try await connection.consume(queue: dead))
            let deadLettered = try #require(try await parked.waitFor(1).first)
            #expect(deadLettered.body == Array("poison".utf8))
            #expect(deadLettered.properties.messageId == "poison-1")
            guard case .array(let deaths)? = deadLettered.properties.headers["x-death"],
                case .table(let death)? = deaths.first
            else {
                Issue.record("no x-death header in \(deadLettered.properties.headers)")
                return
            }
            #expect(death["queue"]?.stringValue == work)
            #expect(death["reason"]?.stringValue == "rejected")
            #expect(death["count"]?.intValue == 1)
            rejecting.stop()
            parked.stop()
            for queue in [work, dead] { try await connection.deleteQueue(queue) }
            try await connection.deleteExchange(deadExchange)
            await connection.close()
        }

        @Test("exhausting a quorum queue's delivery limit dead-letters the message instead of dropping it")
        func deliveryLimitDeadLetters() async throws {
            let connection = try await TestBroker.connect()
            let work = TestBroker.uniqueName("limited")
            let deadExchange = TestBroker.uniqueName("limit-dlx")
            let dead = TestBroker.uniqueName("limit-dead")
            try await connection.declare(
                AMQPTopology(
                    exchanges: [ExchangeSpec(name: deadExchange, kind: .fanout, durable: false)],
                    queues: [
                        QueueSpec(
                            name: work, deadLetterExchange: deadExchange, deliveryLimit: 2,
                            extraArguments: TestBroker.expiry),
                        QueueSpec(name: dead, extraArguments: TestBroker.expiry),
                    ],
                    bindings: [BindingSpec(queue: dead, exchange: deadExchange, routingKey: "")]))
            try await connection.publish(OutboundMessage(routingKey: work, body: Array("flaky".utf8)))

            // Requeue every time: the broker must stop after the limit and dead-letter the message.
            let requeueing = DeliveryCollector(try await connection.consume(queue: work)) { _ in .nackRequeue }
            let parked = DeliveryCollector(try await connection.consume(queue: dead))
            let deadLettered = try #require(try await parked.waitFor(1).first)
            #expect(deadLettered.body == Array("flaky".utf8))
            #expect(requeueing.deliveries.count == 3, "first delivery plus two redeliveries")
            let redeliveries = requeueing.deliveries.dropFirst()
            #expect(redeliveries.allSatisfy { $0.redelivered })
            guard case .array(let deaths)? = deadLettered.properties.headers["x-death"],
                case .table(let death)? = deaths.first
            else {
                Issue.record("no x-death header")
                return
            }
            #expect(death["reason"]?.stringValue == "delivery_limit")
            #expect(try await connection.queueCounts(work).ready == 0)
            requeueing.stop()
            parked.stop()
            for queue in [work, dead] { try await connection.deleteQueue(queue) }
            try await connection.deleteExchange(deadExchange)
            await connection.close()
        }

        @Test("passive-declare counts match rabbitmqctl list_queues")
        func passiveDeclareCountsMatchRabbitmqctl() async throws {
            let connection = try await TestBroker.connect()
            let queue = TestBroker.uniqueName("counted")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
            try await connection.publish(numberedMessages(37, queue: queue))
            var counts = try await connection.queueCounts(queue)
            #expect(counts == QueueCounts(ready: 37, consumers: 0))
            try await eventually("rabbitmqctl to report 37 ready") {
                try TestBroker.readyCountFromRabbitmqctl(queue) == 37
            }

            // With a consumer holding 5 unacked messages, "ready" excludes them on both sides.
            let holding = try await connection.consume(queue: queue, prefetch: 5)
            try await eventually("5 messages to be delivered and held") {
                counts = try await connection.queueCounts(queue)
                return counts.ready == 32 && counts.consumers == 1
            }
            try await eventually("rabbitmqctl to report 32 ready") {
                try TestBroker.readyCountFromRabbitmqctl(queue) == 32
            }
            holding.cancel()
            try await eventually("the held messages to return") { try await connection.queueCounts(queue).ready == 37 }
            #expect(try await connection.queueCounts(queue).consumers == 0)
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test("a passive declare of a missing queue fails with 404 and the connection carries on")
        func missingQueueIs404() async throws {
            let connection = try await TestBroker.connect()
            let error = await #expect(throws: AMQPError.self) {
                _ = try await connection.queueCounts(TestBroker.uniqueName("missing"))
            }
            #expect(error?.code == .channelClosed)
            #expect(error?.replyCode == 404)
            let queue = TestBroker.uniqueName("present")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
            #expect(try await connection.queueCounts(queue).ready == 0)
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test("a connection nobody holds any more closes itself and leaves the broker")
        func droppedConnectionCloses() async throws {
            let name = TestBroker.uniqueName("dropped")
            func listed() throws -> Bool {
                try TestBroker.rabbitmqctl("list_connections", "-q", "--no-table-headers", "client_properties")
                    .contains(name)
            }
            do {
                let connection = try await TestBroker.connect { $0.connectionName = name }
                try await eventually("the broker to list the connection") { try listed() }
                let queue = TestBroker.uniqueName("dropped-queue")
                try await connection.declare(
                    AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
                try await connection.deleteQueue(queue)
            }
            try await eventually("the broker to forget the connection") { try !listed() }
        }

        @Test("acks from many concurrent handlers settle every delivery exactly once")
        func concurrentAcksSettleEverything() async throws {
            let connection = try await TestBroker.connect()
            let queue = TestBroker.uniqueName("acks")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
            try await connection.publish(numberedMessages(2_000, queue: queue))
            let consumer = try await connection.consume(queue: queue, prefetch: 200)
            // Settle out of order from a task group, as a worker with concurrency > 1 does.
            let ids = try await withThrowingTaskGroup(of: Void.self) { group in
                var ids = Set<String>()
                for try await delivery in consumer {
                    #expect(!delivery.redelivered)
                    ids.insert(delivery.properties.messageId ?? "")
                    group.addTask {
                        try await Task.sleep(for: .microseconds(Int.random(in: 0...500)))
                        delivery.ack()
                    }
                    if ids.count == 2_000 { break }
                }
                try await group.waitForAll()
                return ids
            }
            #expect(ids == Set((0..<2_000).map { "m-\($0)" }))
            // With the consumer still attached, the broker must hold nothing unacknowledged: a lost
            // ack would stay unacknowledged for as long as the channel lives. (Cancelling here and
            // probing would not prove more: RabbitMQ 3.10 can hand a few just-acked messages back to a
            // quorum queue when a channel closes right after its acks, rabbitmq/rabbitmq-server#10327.)
            try await eventually("the broker to hold no ready and no unacknowledged message") {
                try TestBroker.queueColumns(queue, "messages_ready", "messages_unacknowledged") == [0, 0]
            }
            #expect(try await connection.queueCounts(queue) == QueueCounts(ready: 0, consumers: 1))
            consumer.cancel()
            try await connection.deleteQueue(queue)
            await connection.close()
        }
    }
}
