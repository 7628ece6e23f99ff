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

extension EndToEndTests {
    /// One identity batch, slowed by the site's rate limit so that it is surely in flight when the
    /// only worker gets SIGTERM (about 6 s of site calls: at 25 requests/s a loaded machine, running
    /// a build beside the suite, twice let the batch end within the 1 s shutdown timeout); returns
    /// whether the worker exited 0 and whether the batch was done before any other worker existed.
    private func terminateMidBatch(_ name: String, shutdownTimeout: Int) async throws -> (
        exitedCleanly: Bool, doneByFirst: Bool, verdict: AggregatorVerdict
    ) {
        try await EndToEnd.withWorld(users: 60, workers: 0, siteRequestsPerSecond: 10) { world, connection in
            let first = try world.spawnWorkers(
                1, executable: EndToEnd.executable, namePrefix: "\(name)-first",
                extraArguments: ["--site-concurrency", "2", "--shutdown-timeout", "\(shutdownTimeout)"])
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            let request = world.request(name, projects: projects, batchSize: 5_000)
            return try await withThrowingTaskGroup(of: AggregatorVerdict?.self) { group in
                group.addTask {
                    try await world.migrate(request, connection: connection, timeout: .seconds(300)).verdict
                }
                // The site's only traffic past the preflight is the batch: once it has seen a few
                // requests, the batch is in flight (bounded: 120 s).
                let before = try await EndToEnd.siteRequests(world.site)
                for _ in 0..<1_200 where try await EndToEnd.siteRequests(world.site) < before + 6 {
                    try await Task.sleep(for: .milliseconds(100))
                }
                await first.terminate(timeout: .seconds(shutdownTimeout + 60))
                let exitedCleanly = first.exited.count == 1 && first.exited.allSatisfy { $0.status == 0 }
                let batches = try await world.ledger.batches(migrationId: name)
                let doneByFirst = batches.count == 1 && batches.allSatisfy { $0.state == .done }
                let second = try world.spawnWorkers(1, executable: EndToEnd.executable, namePrefix: "\(name)-second")
                let verdict = try await group.next() ?? nil
                await second.terminate()
                return (exitedCleanly, doneByFirst, try #require(verdict))
            }
        }
    }

    @Test("SIGTERM mid-batch: the worker finishes its in-flight batch, acks it, and exits 0")
    func sigtermFinishesInFlightBatch() async throws {
        let run = try await terminateMidBatch("drain", shutdownTimeout: 120)
        #expect(run.exitedCleanly)
        #expect(run.doneByFirst, "the in-flight batch was not finished by the worker that got SIGTERM")
        #expect(run.verdict.reconciled && run.verdict.tally.duplicates == 0)
    }

    @Test("SIGTERM mid-batch past --shutdown-timeout: the batch goes back to its queue, another worker does it once")
    func sigtermPastTimeoutReturnsBatch() async throws {
        let run = try await terminateMidBatch("returned", shutdownTimeout: 1)
        #expect(run.exitedCleanly)
        #expect(!run.doneByFirst, "the batch was finished although the shutdown timeout had passed")
        #expect(run.verdict.reconciled && run.verdict.repliesMatchLedger && run.verdict.tally.duplicates == 0)
    }
}

/// The highest number of batches the aggregator reported counted, shared with its progress callback.
private final class BatchCounter: Sendable {
    private let highest = Mutex(0)
    var value: Int { highest.withLock { $0 } }
    func record(_ done: Int) { highest.withLock { $0 = max($0, done) } }
}
