import AMQP
import ArgumentParser
import Foundation
import Logging

/// Measures the Swift AMQP layer the way `scripts/bench/amqp_baseline.c` measures librabbitmq
/// driven from C, so `scripts/bench-amqp.sh` can print the ratio of the two from one run.
///
/// Each side is its own process, so its peak RSS is its own.
@main
struct AMQPBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amqp-benchmark",
        abstract: "Publish or consume N messages on a quorum queue and print one JSON line of figures.")

    enum Side: String, ExpressibleByArgument { case publish, consume }

    @Argument(help: "publish or consume")
    var side: Side

    @Option(help: "Broker URL; defaults to $AMQP_URL.")
    var url: String?

    @Option(help: "Quorum queue to use (declared if missing).")
    var queue: String = "jsm-bench"

    @Option(help: "Messages to publish or consume.")
    var count: Int = 100_000

    @Option(help: "Body size in bytes.")
    var size: Int = 1024

    @Option(help: "Messages per publish call (each call awaits its confirms).")
    var batch: Int = 500

    @Option(help: "Publish calls in flight at once.")
    var inFlight: Int = 4

    @Option(help: "Consumer prefetch.")
    var prefetch: UInt16 = 200

    func run() async throws {
        guard let url = url ?? ProcessInfo.processInfo.environment["AMQP_URL"] else {
            throw ValidationError("no broker URL: pass --url or set AMQP_URL")
        }
        guard count > 0, size >= 0, batch > 0, inFlight > 0 else {
            throw ValidationError("--count, --batch and --in-flight must be positive")
        }
        var configuration = try AMQPConfiguration(url: url)
        configuration.connectionName = "amqp-benchmark \(side.rawValue)"
        let connection = try await AMQPConnection.connect(configuration, logger: Logger(label: "amqp-benchmark"))
        try await connection.declare(AMQPTopology(queues: [QueueSpec(name: queue, kind: .quorum)]))
        let clock = ContinuousClock()
        let start = clock.now
        switch side {
        case .publish: try await publish(on: connection)
        case .consume: try await consume(on: connection)
        }
        let elapsed = start.duration(to: clock.now)
        await connection.close()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let figures: [String: Any] = [
            "impl": "swift", "side": side.rawValue, "messages": count, "bytes": size,
            "seconds": (seconds * 1000).rounded() / 1000, "msgPerSec": (Double(count) / seconds).rounded(),
            "peakRSSKiB": usage.ru_maxrss,
        ]
        let json = try JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }

    private func publish(on connection: AMQPConnection) async throws {
        let body = [UInt8](repeating: 0x61, count: size)
        let queue = self.queue
        try await withThrowingTaskGroup(of: Void.self) { group in
            var sent = 0
            var running = 0
            while sent < count {
                if running == inFlight {
                    try await group.next()
                    running -= 1
                }
                let chunk = min(batch, count - sent)
                let first = sent
                group.addTask {
                    let messages = (first..<first + chunk).map { index in
                        OutboundMessage(
                            routingKey: queue, body: body, properties: AMQPProperties(messageId: "b-\(index)"))
                    }
                    try await connection.publish(messages)
                }
                sent += chunk
                running += 1
            }
            try await group.waitForAll()
        }
    }

    private func consume(on connection: AMQPConnection) async throws {
        let consumer = try await connection.consume(queue: queue, prefetch: prefetch)
        var received = 0
        for try await delivery in consumer {
            delivery.ack()
            received += 1
            if received == count { break }
        }
        consumer.cancel()
        guard received == count else {
            throw ValidationError("the consumer ended after \(received) of \(count) messages")
        }
    }
}
