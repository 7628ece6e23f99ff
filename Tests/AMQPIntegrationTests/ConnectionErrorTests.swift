import AMQP
import Foundation
import Testing

/// Bad input gets one clear error naming the cause, never a crash or a hang.
extension BrokerSuite {
    @Suite("AMQP connection errors")
    struct ConnectionErrorTests {
        @Test("an unreachable broker is reported as unreachable, naming the address")
        func unreachableBroker() async throws {
            var configuration = try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:1/")
            configuration.connectTimeout = .seconds(3)
            let error = await #expect(throws: AMQPError.self) { _ = try await AMQPConnection.connect(configuration) }
            #expect(error?.code == .unreachable)
            #expect(error?.description.contains("127.0.0.1:1") == true)
        }

        @Test("wrong credentials are reported as an authentication failure without the password")
        func wrongCredentials() async throws {
            var configuration = try TestBroker.configuration()
            configuration.password = "definitely-wrong-secret"
            let error = await #expect(throws: AMQPError.self) { _ = try await AMQPConnection.connect(configuration) }
            #expect(error?.code == .authenticationFailed)
            #expect(error?.description.contains("definitely-wrong-secret") == false)
        }

        @Test("redeclaring a queue with other arguments fails with 406 naming the queue, and the connection carries on")
        func conflictingRedeclare() async throws {
            let connection = try await TestBroker.connect()
            let queue = TestBroker.uniqueName("conflict")
            try await connection.declare(
                AMQPTopology(queues: [QueueSpec(name: queue, deliveryLimit: 5, extraArguments: TestBroker.expiry)]))
            let error = await #expect(throws: AMQPError.self) {
                try await connection.declare(
                    AMQPTopology(queues: [QueueSpec(name: queue, deliveryLimit: 9, extraArguments: TestBroker.expiry)]))
            }
            #expect(error?.code == .channelClosed)
            #expect(error?.replyCode == 406)
            #expect(error?.description.contains(queue) == true)
            #expect(error?.isRetriable == false)
            try await connection.publish(OutboundMessage(routingKey: queue, body: [1]))
            #expect(try await connection.queueCounts(queue).ready == 1)
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test("URLs: vhost decoding, TLS query options, and refusal of other schemes")
        func urlParsing() throws {
            let plain = try AMQPConfiguration(url: "amqp://u%40x:p%3Aw@broker.example:5673/%2f")
            #expect(plain.user == "u@x")
            #expect(plain.password == "p:w")
            #expect(plain.virtualHost == "/")
            #expect(plain.port == 5673)
            #expect(plain.tls == nil)
            #expect(!plain.redactedURL.contains("p:w"))
            let secure = try AMQPConfiguration(url: "amqps://u:p@localhost/jsm?cacertfile=/etc/ca.pem")
            #expect(secure.port == 5671)
            #expect(secure.virtualHost == "jsm")
            #expect(secure.tls?.caCertificateFile == "/etc/ca.pem")
            #expect(secure.tls?.verifyPeer == true)
            #expect(throws: AMQPError.self) { try AMQPConfiguration(url: "http://u:p@localhost/") }
            #expect(throws: AMQPError.self) { try AMQPConfiguration(url: "amqps://u:p@localhost/?colour=blue") }
        }
    }
}
