import AMQP
import AsyncHTTPClient
import Foundation
import JSMLedger
import JSMLocalRun
import JSMPipeline
import Testing

extension EndToEndTests {
    @Test("a batch failing twice (site 500) then succeeding goes through the delayed retries and is counted once")
    func batchFailingTwiceIsRetried() async throws {
        try await EndToEnd.withWorld(workers: 1) { world, connection in
            // The first customer email the site sees answers 500 to its next two creations.
            try await EndToEnd.armSiteFaults(world.site, failures: 2, status: 500)
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            let (verdict, retryingSeen) = try await withThrowingTaskGroup(of: Int?.self) { group in
                // While the batch waits in the 30 s retry queue, `status` counts it as retrying.
                group.addTask {
                    for _ in 0..<1_200 {
                        let waiting = try await world.ledger.batches(migrationId: "retried", state: .pending)
                            .filter { $0.attempts == 2 }
                        if !waiting.isEmpty {
                            let status = try await EndToEnd.runCommand(
                                [
                                    "status", "--migration", "retried", "--json", "--ledger",
                                    world.ledgerLocation.description,
                                ],
                                environment: world.environment)
                            let report = try JSONDecoder().decode(RetryStatus.self, from: Data(status.output.utf8))
                            return report.migrations.first?.retrying
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    return nil
                }
                let (_, verdict) = try await world.migrate(
                    world.request("retried", projects: projects, batchSize: 100), connection: connection,
                    timeout: .seconds(300))
                let seen = try await group.next() ?? nil
                return (verdict, seen)
            }
            #expect(retryingSeen == 1, "status did not show the batch waiting for its retry")
            // Counted once: the replies' totals equal the ledger's (a reply that arrives after the
            // aggregator counted its batch from the ledger is a duplicate, ignored by batch id).
            #expect(verdict.reconciled && verdict.repliesMatchLedger)
            let batches = try await world.ledger.batches(migrationId: "retried", limit: 10_000)
            let retried = batches.filter { $0.attempts > 1 }
            // Two failed attempts recorded, then the completion: three attempts, done, counted once.
            #expect(retried.count == 1, "\(retried.map { "\($0.batchId): \($0.attempts)" })")
            #expect(retried.first?.attempts == 3 && retried.first?.state == .done)
            #expect(batches.allSatisfy { $0.state == .done })
            #expect(verdict.tally.batches.count == batches.count)
            // Creations that went through in a failed attempt were linked in the next: still one
            // account per (email, account type).
            let accounts = try await EndToEnd.siteAccounts(world.site)
            let keys = accounts.map { "\($0.emailAddress.lowercased())|\($0.accountType)" }
            #expect(Set(keys).count == keys.count)
        }
    }
}

/// The part of `jsm-migrate status --json` this test reads.
private struct RetryStatus: Decodable {
    struct Migration: Decodable { let retrying: Int }
    let migrations: [Migration]
}
