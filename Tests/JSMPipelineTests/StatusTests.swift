import AMQP
import Foundation
import JSMContracts
import JSMLocalRun
import JSMServices
import Testing

extension EndToEndTests {
    @Test("status shows unacknowledged messages from the management API as rabbitmqctl does, and says when it cannot")
    func statusShowsUnacknowledged() async throws {
        try await EndToEnd.withWorld(users: 100, workers: 0) { world, connection in
            try await connection.declare(MigrationBrokerTopology().declarations)
            let queue = RPCMethod.migrateIdentities.queueName
            try await connection.publish((0..<5).map { OutboundMessage(routingKey: queue, body: [UInt8($0)]) })
            // Hold three deliveries unacknowledged, as a busy worker would.
            let consumer = try await connection.consume(queue: queue, prefetch: 3)
            var iterator = consumer.makeAsyncIterator()
            var held: [AMQPDelivery] = []
            for _ in 0..<3 {
                if let delivery = try await iterator.next() { held.append(delivery) }
            }
            #expect(held.count == 3)
            let ledger = world.ledgerLocation.description
            func status(_ arguments: [String], _ overrides: [String: String] = [:]) async throws
                -> EndToEnd.CommandResult
            {
                try await EndToEnd.runCommand(
                    ["status", "--ledger", ledger] + arguments,
                    environment: world.environment.merging(overrides) { _, new in new })
            }
            // The management API emits statistics every few seconds: poll (bounded) until it has them.
            var counts: StatusQueue?
            for _ in 0..<40 {
                let run = try await status(["--json"])
                #expect(run.status == 0, "\(run.error)")
                let report = try JSONDecoder().decode(StatusReport.self, from: Data(run.output.utf8))
                counts = report.queues.first { $0.name == queue }
                if counts?.unacked == 3 { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(
                counts?.unacked == 3 && counts?.ready == 2 && counts?.consumers == 1, "\(String(describing: counts))")
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent()
            let listed = try await EndToEnd.runProcess(
                root.appendingPathComponent("scripts/services.sh"),
                [
                    "rabbitmqctl", "list_queues", "-p", connection.configuration.virtualHost, "name",
                    "messages_unacknowledged", "-q",
                    "--no-table-headers",
                ])
            let line = listed.output.split(separator: "\n").first {
                $0.hasPrefix(queue + "\t") || $0.hasPrefix(queue + " ")
            }
            #expect(line?.split(whereSeparator: { $0 == "\t" || $0 == " " }).last == "3", "\(listed.output)")

            let text = try await status([])
            #expect(text.status == 0 && text.output.contains("unacked"), "\(text.output)")

            // An unreachable management API: status still answers, and says why unacked is unknown.
            let unreachable = try await status(["--json"], ["JSM_RABBITMQ_MGMT_URL": "http://127.0.0.1:1"])
            #expect(unreachable.status == 0, "\(unreachable.error)")
            let partial = try JSONDecoder().decode(StatusReport.self, from: Data(unreachable.output.utf8))
            #expect(partial.managementError != nil)
            #expect(partial.queues.allSatisfy { $0.unacked == nil })
            #expect(partial.queues.first { $0.name == queue }?.ready == 2)
            // A URL that is not http(s), or that carries credentials, is refused before anything runs.
            let wrong = try await status(["--management-url", "ftp://127.0.0.1:15672"])
            #expect(wrong.status != 0 && wrong.error.contains("not an http(s) URL"), "\(wrong.error)")
            let secret = try await status(["--management-url", "http://user:hunter2@127.0.0.1:15672"])
            #expect(secret.status != 0 && !secret.error.contains("hunter2"), "\(secret.error)")

            for delivery in held { delivery.reject(requeue: true) }
            consumer.cancel()
        }
    }
}

extension EndToEndTests {
    @Test("--topology check refuses to start on a broker without the topology, and says how to declare it")
    func topologyCheckNamesTheMissingTopology() async throws {
        try await EndToEnd.withWorld(users: 50, workers: 0) { world, _ in
            let empty = "jsm-e2e-empty-\(UInt32.random(in: 0...UInt32.max))"
            let url = try await EndToEnd.createVhost(empty)
            let run = try await EndToEnd.runCommand(
                ["aggregator", "--topology", "check", "--ledger", world.ledgerLocation.description],
                environment: world.environment.merging(["AMQP_URL": url]) { _, new in new })
            try await EndToEnd.deleteVhost(empty)
            #expect(run.status != 0)
            #expect(
                run.error.contains("broker topology is missing") && run.error.contains("jsm-migrate broker declare"),
                "\(run.error)")
        }
    }
}

/// The parts of `jsm-migrate status --json` this test reads.
private struct StatusReport: Decodable {
    let queues: [StatusQueue]
    let managementError: String?

    enum CodingKeys: String, CodingKey {
        case queues
        case managementError = "management_error"
    }
}

private struct StatusQueue: Decodable {
    let name: String
    let ready: Int
    let unacked: Int?
    let consumers: Int
}
