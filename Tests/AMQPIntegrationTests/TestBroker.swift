import AMQP
import Foundation
import Logging
import Synchronization
import Testing

/// Every test that talks to the broker, one at a time: some of them close all connections or
/// stop the broker application, which would break any test running beside them.
@Suite("RabbitMQ broker", .serialized)
enum BrokerSuite {}

/// The RabbitMQ broker that `scripts/services.sh` starts for the tests.
///
/// Read from the environment that script writes (`.data/env.sh`), with its defaults. There is no
/// skip: a broker that is not running makes every test here fail with the connect error.
enum TestBroker {
    static var url: String {
        ProcessInfo.processInfo.environment["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5673/%2f"
    }
    static var nodeName: String {
        ProcessInfo.processInfo.environment["RABBITMQ_NODENAME"] ?? "jsm-rabbit@localhost"
    }

    static func configuration() throws -> AMQPConfiguration {
        var configuration = try AMQPConfiguration(url: url)
        configuration.connectionName = "jsm-tests"
        configuration.reconnectGiveUpAfter = .seconds(90)
        return configuration
    }

    static func connect(_ adjust: (inout AMQPConfiguration) -> Void = { _ in }) async throws -> AMQPConnection {
        var configuration = try configuration()
        adjust(&configuration)
        var logger = Logger(label: "jsm.amqp.tests")
        logger.logLevel = .warning
        return try await AMQPConnection.connect(configuration, logger: logger)
    }

    /// A queue name no other test uses; the queue expires by itself if a test dies before cleaning up.
    static func uniqueName(_ purpose: String) -> String {
        "jsm-test-\(purpose)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    static let expiry: AMQPTable = ["x-expires": .int64(600_000)]

    /// Runs `rabbitmqctl` against the test node and returns its standard output.
    @discardableResult
    static func rabbitmqctl(_ arguments: String...) throws -> String {
        try rabbitmqctl(arguments)
    }

    /// Runs `rabbitmqctl` with an argument array.
    @discardableResult
    static func rabbitmqctl(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/rabbitmqctl")
        process.arguments = ["-n", nodeName] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BrokerControlError(command: arguments.joined(separator: " "), status: process.terminationStatus)
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Columns of one queue as `rabbitmqctl list_queues` reports them (nil when the queue is not listed).
    static func queueColumns(_ queue: String, _ columns: String...) throws -> [Int]? {
        let listing = try rabbitmqctl(
            ["list_queues", "-q", "--no-table-headers", "name"] + columns)
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            if fields.count == columns.count + 1, fields[0] == queue {
                return fields.dropFirst().compactMap { Int($0) }
            }
        }
        return nil
    }

    /// Ready-message count of a queue as `rabbitmqctl list_queues` reports it.
    static func readyCountFromRabbitmqctl(_ queue: String) throws -> Int? {
        try queueColumns(queue, "messages_ready")?.first
    }
}

struct BrokerControlError: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    var description: String { "rabbitmqctl \(command) exited with \(status)" }
}

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Polls a condition until it holds or the time is up; every wait in these tests is bounded.
func eventually(_ what: String, within limit: Duration = .seconds(30), _ condition: () async throws -> Bool)
    async throws
{
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TimedOut(what: what)
}

/// Consumes in the background, settles each delivery with `decide`, and records what it saw.
final class DeliveryCollector: Sendable {
    enum Decision: Sendable { case ack, nackRequeue, nackDiscard, rejectDiscard }
    private final class State: Sendable {
        let seen = Mutex<[AMQPDelivery]>([])
        let failure = Mutex<(any Error)?>(nil)
    }
    private let state = State()
    private let task: Task<Void, Never>

    init(_ consumer: AMQPConsumer, decide: @escaping @Sendable (AMQPDelivery) -> Decision = { _ in .ack }) {
        let state = self.state
        task = Task {
            do {
                for try await delivery in consumer {
                    state.seen.withLock { $0.append(delivery) }
                    switch decide(delivery) {
                    case .ack: delivery.ack()
                    case .nackRequeue: delivery.nack(requeue: true)
                    case .nackDiscard: delivery.nack(requeue: false)
                    case .rejectDiscard: delivery.reject(requeue: false)
                    }
                }
            } catch {
                state.failure.withLock { $0 = error }
            }
        }
    }

    var deliveries: [AMQPDelivery] { state.seen.withLock { $0 } }
    var error: (any Error)? { state.failure.withLock { $0 } }

    /// Waits until at least `count` deliveries arrived.
    func waitFor(_ count: Int, within limit: Duration = .seconds(30)) async throws -> [AMQPDelivery] {
        try await eventually("\(count) deliveries", within: limit) {
            if let error { throw error }
            return deliveries.count >= count
        }
        return deliveries
    }

    func stop() { task.cancel() }
}

/// Messages with distinct ids and bodies, for tests that count what arrived.
func numberedMessages(_ count: Int, queue: String, tag: String = "m") -> [OutboundMessage] {
    (0..<count).map { index in
        OutboundMessage(
            routingKey: queue, body: Array("\(tag)-\(index)".utf8),
            properties: AMQPProperties(messageId: "\(tag)-\(index)"))
    }
}
