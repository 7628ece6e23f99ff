import AMQP
import JSMLocalRun
import JSMPipeline
import JSMServices
import Testing

extension EndToEndTests {
    @Test("a migration whose last batch the aggregator counted from the ledger ends at that batch's reply")
    func endsAtAReplyCountedBefore() async throws {
        try await EndToEnd.withWorld(users: 40, workers: 1) { world, connection in
            let name = "seeded-end"
            // One batch: its reply is the first the aggregator sees of the migration.
            let request = world.wholeScopeRequest(name, batchSize: 1_000)
            try await connection.declare(MigrationBrokerTopology().declarations)
            let aggregator = MigrationAggregator(ledger: world.ledger)
            let verdict = try await withThrowingTaskGroup(
                of: AggregatorVerdict?.self, returning: AggregatorVerdict?.self
            ) {
                group in
                // Its periodic check does not come within the test: only a reply can end the migration.
                group.addTask {
                    try await aggregator.run(connection: connection, until: name, checkInterval: .seconds(3_600))
                }
                group.addTask {
                    // The aggregator's first look at the ledger (a consumer, then one query: milliseconds)
                    // comes before the migration exists; if it came after, the reply would be counted
                    // as new and the duplicate check below would fail rather than pass unexercised.
                    try await Task.sleep(for: .seconds(3))
                    _ = try await world.source.withSource { jira in
                        try await MigrationProducer(ledger: world.ledger, source: jira).start(
                            request, connection: connection)
                    }
                    try await Task.sleep(for: .seconds(120))
                    throw HarnessFailure("no verdict within 120 s of the start")
                }
                defer { group.cancelAll() }
                // Bounded: the producer's task ends with an error, the aggregator's with its verdict.
                while let next = try await group.next() {
                    if let verdict = next { return verdict }
                }
                return nil
            }
            let ended = try #require(verdict)
            #expect(ended.reconciled)
            // The worker committed the batch before replying: the reply found it counted already.
            #expect(ended.tally.duplicates == 1 && ended.tally.batches.count == 1)
        }
    }
}
