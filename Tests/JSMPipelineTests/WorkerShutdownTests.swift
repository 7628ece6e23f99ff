import AMQP
import Foundation
import JSMLedger
import JSMLocalRun
import JSMPipeline
import Synchronization
import Testing

extension EndToEndTests {
    @Test("SIGTERM to every worker mid-migration: they exit 0, new workers finish, nothing lost or counted twice")
    func workersTerminatedMidMigration() async throws {
        try await EndToEnd.withWorld(workers: 0) { world, connection in
            let first = try world.spawnWorkers(2, executable: EndToEnd.executable, namePrefix: "first")
            let counted = BatchCounter()
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            let request = world.request("sigterm", projects: projects, batchSize: 40)
            try await withThrowingTaskGroup(of: AggregatorVerdict?.self) { group in
                group.addTask {
                    try await world.migrate(
                        request, connection: connection, timeout: .seconds(300),
                        onProgress: { _, done, _ in counted.record(done) }
                    ).verdict
                }
                // Bounded: at most 120 s for the first batches to be counted.
                for _ in 0..<1_200 where counted.value < 3 {
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(counted.value >= 3, "no batch was counted before the workers were stopped")
                await first.terminate(timeout: .seconds(30))
                #expect(first.exited.count == 2 && first.exited.allSatisfy { $0.status == 0 }, "\(first.exited)")
                let second = try world.spawnWorkers(2, executable: EndToEnd.executable, namePrefix: "second")
                let verdict = try await group.next() ?? nil
                await second.terminate()
                let finished = try #require(verdict)
                #expect(finished.reconciled && finished.repliesMatchLedger)
                #expect(
                    finished.batchStates[.pending, default: 0] == 0 && finished.batchStates[.parked, default: 0] == 0)
                #expect(finished.tally.batches.count == finished.batchStates.values.reduce(0, +))
            }
            // The site holds one account per (email, account type): no redelivery made a second one.
            let accounts = try await EndToEnd.siteAccounts(world.site)
            let keys = accounts.map { "\($0.emailAddress.lowercased())|\($0.accountType)" }
            #expect(Set(keys).count == keys.count)
        }
    }
}

/// The highest number of batches the aggregator reported counted, shared with its progress callback.
private final class BatchCounter: Sendable {
    private let highest = Mutex(0)
    var value: Int { highest.withLock { $0 } }
    func record(_ done: Int) { highest.withLock { $0 = max($0, done) } }
}
