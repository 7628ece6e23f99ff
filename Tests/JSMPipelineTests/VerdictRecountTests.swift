import AMQP
import JSMLocalRun
import Testing

@testable import JSMPipeline

extension EndToEndTests {
    @Test("a migration's end is recounted once, though the periodic check runs while the last reply is counted")
    func verdictIsRecountedOnce() async throws {
        try await EndToEnd.withWorld(users: 300, workers: 2) { world, connection in
            let name = "recount-once"
            let request = world.wholeScopeRequest(name, batchSize: 20)
            _ = try await world.source.withSource { jira in
                try await MigrationProducer(ledger: world.ledger, source: jira).start(request, connection: connection)
            }
            let aggregator = MigrationAggregator(ledger: world.ledger)
            // Checking every millisecond, the periodic check reaches the migration's end while the
            // reply path is recounting it (and the other way round).
            let verdict = try await aggregator.run(connection: connection, until: name, checkInterval: .milliseconds(1))
            #expect(verdict?.reconciled == true)
            #expect(await aggregator.recounts[name] == 1)
        }
    }
}
