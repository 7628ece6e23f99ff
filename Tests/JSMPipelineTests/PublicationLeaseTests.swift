import AMQP
import JSMContracts
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import JSMServices
import Testing

extension EndToEndTests {
    @Test("a migration without projects, started while an aggregator runs: each batch is published once")
    func producerAndAggregatorPublishEachBatchOnce() async throws {
        try await EndToEnd.withWorld(users: 300, workers: 0) { world, connection in
            let name = "leased"
            let request = world.wholeScopeRequest(name, batchSize: 2)
            try await connection.declare(MigrationBrokerTopology().declarations)
            let aggregator = MigrationAggregator(ledger: world.ledger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Checking every 20 ms, the aggregator publishes what it finds unpublished while the
                // producer is still publishing the same batches (no projects: the producer cuts them).
                group.addTask {
                    _ = try await aggregator.run(connection: connection, until: name, checkInterval: .milliseconds(20))
                }
                _ = try await world.source.withSource { jira in
                    try await MigrationProducer(ledger: world.ledger, source: jira).start(
                        request, connection: connection)
                }
                // A few more checks after the producer's last round, then stop the aggregator.
                try await Task.sleep(for: .milliseconds(500))
                group.cancelAll()
            }
            let batches = try await world.ledger.batches(migrationId: name, limit: 10_000)
            // No worker consumes: the queue holds every message published, and purging counts them exactly.
            let messages = try await connection.purgeQueue(RPCMethod.migrateIdentities.queueName)
            #expect(batches.count > 100)
            #expect(Int(messages) == batches.count, "some batches were published twice (or not at all)")
        }
    }
}
