import AMQP
import Foundation
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import Testing

extension EndToEndTests {
    @Test(
        "batches parked by a misconfigured worker: failed list, discard one, retry the rest, the migration reconciles")
    func failedRetryAndDiscard() async throws {
        try await EndToEnd.withWorld(workers: 0) { world, connection in
            // A worker configured for another site parks every identity batch it receives.
            let misconfigured = try world.spawnWorkers(
                1, executable: EndToEnd.executable, siteId: "another-site", namePrefix: "misconfigured")
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            let (_, first) = try await world.migrate(
                world.request("fail", projects: projects, batchSize: 200), connection: connection,
                timeout: .seconds(180))
            await misconfigured.terminate()
            let parked = first.batchStates[.parked, default: 0]
            #expect(first.state == .incomplete && !first.reconciled)
            #expect(parked > 1 && parked == first.batchStates.values.reduce(0, +))

            let ledger = world.ledgerLocation.description
            let environment = world.environment
            func failed(_ arguments: [String]) async throws -> EndToEnd.CommandResult {
                try await EndToEnd.runCommand(
                    ["failed"] + arguments + ["--migration", "fail", "--ledger", ledger], environment: environment)
            }
            let list = try await failed(["list"])
            #expect(list.status == 0)
            #expect(list.output.contains("\(parked) parked batch(es), 0 discarded"))
            #expect(list.output.contains("group 1: \(parked) batch(es)"))
            #expect(list.output.contains("this worker serves site 'another-site'"))

            // Bad input: one clear line, a non-zero exit, nothing moved.
            let unknown = try await failed(["retry", "--batch", "identities-999"])
            #expect(unknown.status == 1 && unknown.error.contains("no batch 'identities-999' in fail"))
            let badGroup = try await failed(["retry", "--group", "7"])
            #expect(badGroup.status == 1 && badGroup.error.contains("no error group 7"))
            let unknownMigration = try await EndToEnd.runCommand(
                ["failed", "list", "--migration", "nope", "--ledger", ledger], environment: environment)
            #expect(unknownMigration.status == 1 && unknownMigration.error.contains("no migration 'nope'"))
            #expect(try await world.ledger.failedBatches(migrationId: "fail").allSatisfy { $0.state == .parked })

            // Discard one batch: its identities are rejected (discarded); discarding it again is refused.
            let discarded = try #require(try await world.ledger.failedBatches(migrationId: "fail").first)
            let discard = try await failed(["discard", "--batch", discarded.batchId])
            #expect(discard.status == 0, "\(discard.error)")
            let again = try await failed(["discard", "--batch", discarded.batchId])
            #expect(again.status == 1 && again.error.contains("is discarded, not parked"))
            let show = try await failed(["show", "--batch", discarded.batchId])
            #expect(show.status == 0 && show.output.contains("state: discarded"))

            // Retry the rest: back on the work queue, where status and rabbitmqctl see the same counts.
            let retry = try await failed(["retry", "--all"])
            #expect(retry.status == 0, "\(retry.error)")
            #expect(retry.output.contains("\(parked - 1) batch(es) of fail back to pending"))
            let status = try await EndToEnd.runCommand(
                ["status", "--migration", "fail", "--json", "--ledger", ledger], environment: environment)
            #expect(status.status == 0, "\(status.error)")
            let reported = try JSONDecoder().decode(StatusJSON.self, from: Data(status.output.utf8))
            // rabbitmqctl reports quorum queue counts from periodically emitted stats: wait (bounded)
            // until it has caught up with what status read by passive declare.
            var listed = try await EndToEnd.listQueues(environment: environment)
            for _ in 0..<40 {
                let caughtUp = reported.queues.allSatisfy { !$0.present || listed[$0.name]?.ready == $0.ready }
                if caughtUp { break }
                try await Task.sleep(for: .milliseconds(500))
                listed = try await EndToEnd.listQueues(environment: environment)
            }
            for queue in reported.queues where queue.present {
                #expect(listed[queue.name]?.ready == queue.ready, "\(queue.name)")
                #expect(listed[queue.name]?.consumers == queue.consumers, "\(queue.name)")
            }
            #expect(listed["jsm.work.MigrateIdentities"]?.ready == parked - 1)
            #expect(reported.migrations.first?.batches["pending"] == parked - 1)
            #expect(reported.migrations.first?.batches["discarded"] == 1)
            let unknownStatus = try await EndToEnd.runCommand(
                ["status", "--migration", "nope", "--ledger", ledger], environment: environment)
            #expect(unknownStatus.status == 1 && unknownStatus.error.contains("no migration 'nope'"))

            // The cause fixed (workers for the right site): an aggregator finishes the migration.
            let healthy = try world.spawnWorkers(2, executable: EndToEnd.executable, namePrefix: "healthy")
            let verdict = try await withThrowingTaskGroup(of: AggregatorVerdict?.self) { group in
                group.addTask {
                    try await MigrationAggregator(ledger: world.ledger).run(connection: connection, until: "fail")
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(180))
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next() ?? nil
            }
            await healthy.terminate()
            let finished = try #require(verdict, "the aggregator did not finish the migration in time")
            let diagnosis =
                "invariant \(finished.totals.invariantHolds), replies \(finished.repliesMatchLedger), "
                + "missing \(finished.missing)"
            #expect(finished.reconciled && finished.repliesMatchLedger, "\(diagnosis)")
            #expect(finished.batchStates[.discarded] == 1 && finished.batchStates[.parked] == 0)
            #expect(finished.state == .incomplete)  // the discarded identities are rejected
            let content = try await world.ledger.loadIdentityBatch(migrationId: "fail", batchId: discarded.batchId)
            for identity in content.identities {
                let mapping = try await world.ledger.mapping(
                    siteId: world.siteLocation.siteId, userKey: identity.userKey)
                #expect(mapping?.outcome == .rejected && mapping?.reason == "discarded")
            }
            #expect(finished.totals.overall.rejected >= content.identities.count)
            let retriedAgain = try await failed(["retry", "--batch", discarded.batchId])
            #expect(retriedAgain.status == 1 && retriedAgain.error.contains("not parked"))
        }
    }
}

/// The parts of `jsm-migrate status --json` the test reads.
private struct StatusJSON: Decodable {
    struct Queue: Decodable {
        let name: String
        let present: Bool
        let ready: Int
        let consumers: Int
    }
    struct Migration: Decodable {
        let id: String
        let batches: [String: Int]
    }
    let queues: [Queue]
    let migrations: [Migration]
}
