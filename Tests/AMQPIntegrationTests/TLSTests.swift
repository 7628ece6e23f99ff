import AMQP
import Foundation
import Testing

/// `amqps://` against the broker's TLS listener, with the CA that `scripts/services.sh` made.
extension BrokerSuite {
    @Suite("AMQP over TLS")
    struct TLSTests {
        static var environment: [String: String] { ProcessInfo.processInfo.environment }

        static func configuration(caFile: String?) throws -> AMQPConfiguration {
            let url = environment["AMQPS_URL"] ?? "amqps://guest:guest@localhost:5674/%2f"
            var configuration = try AMQPConfiguration(url: url)
            configuration.tls?.caCertificateFile = caFile
            configuration.connectTimeout = .seconds(5)
            return configuration
        }

        @Test("amqps with the right CA connects and round-trips a message")
        func trustedCA() async throws {
            let ca = try #require(
                Self.environment["AMQP_TLS_CA_FILE"], "AMQP_TLS_CA_FILE must be set by scripts/services.sh")
            let connection = try await AMQPConnection.connect(try Self.configuration(caFile: ca))
            let queue = TestBroker.uniqueName("tls")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, extraArguments: TestBroker.expiry)]))
            try await connection.publish(OutboundMessage(routingKey: queue, body: Array("secret".utf8)))
            #expect(try await connection.queueCounts(queue).ready == 1)
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test("amqps with a CA that did not sign the broker's certificate is refused")
        func wrongCA() async throws {
            let other = try #require(Self.environment["AMQP_TLS_OTHER_CA_FILE"], "AMQP_TLS_OTHER_CA_FILE must be set")
            let error = await #expect(throws: AMQPError.self) {
                _ = try await AMQPConnection.connect(try Self.configuration(caFile: other))
            }
            #expect(error?.code == .tlsFailed)
        }
    }
}
