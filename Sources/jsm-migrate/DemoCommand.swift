import AMQP
import ArgumentParser
import Foundation
import JSMContracts
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import JSMServices
import Logging
import Synchronization

/// The whole product on one machine: a generated Jira database, the local cloud site with some
/// pre-existing accounts, `start`, several worker processes and the aggregator over the real
/// broker, then the reconciled totals.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Migrate a generated Jira database to the local cloud site with worker processes, and reconcile.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var broker: BrokerOptions

    @Option(help: "Directory users to generate in the sample Jira database.")
    var users = 20_000

    @Option(help: "Identities per batch (one email is never split across batches).")
    var batchSize = 500

    @Option(help: "Worker processes.")
    var workers = 3

    @Option(help: "Seed of the generator: same seed, same database.")
    var seed: UInt64 = 42

    @Option(help: "Folder for the demo's files (emptied first).")
    var directory = ".jsm/demo"

    @Option(help: "Give up after this many seconds.")
    var timeout = 600

    @Flag(help: "Empty the work and results queues first (they must otherwise be empty).")
    var purge = false

    func validate() throws {
        guard users > 0, users <= 5_000_000 else { throw ValidationError("--users must be 1...5000000") }
        guard batchSize > 0, batchSize <= 10_000 else { throw ValidationError("--batch-size must be 1...10000") }
        guard workers > 0, workers <= 32 else { throw ValidationError("--workers must be 1...32") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        global.bootstrapLogging()
        let logger = Logger(label: "jsm.demo")
        guard let executable = Bundle.main.executableURL else {
            throw ValidationError("cannot tell where the jsm-migrate executable is")
        }
        var workerArguments: [String] = []
        if let url = broker.url { workerArguments += ["--amqp-url", url] }
        if let file = broker.urlFile { workerArguments += ["--amqp-url-file", file] }
        if let ca = broker.caFile { workerArguments += ["--amqp-ca-file", ca] }
        let directory = URL(fileURLWithPath: self.directory).standardizedFileURL.path
        let configuration = LocalWorld.Configuration(
            directory: directory, users: users, seed: seed, workers: workers, executable: executable,
            environment: ProcessInfo.processInfo.environment)
        var worldConfiguration = configuration
        worldConfiguration.workerArguments = workerArguments
        let started = ContinuousClock.now
        try await broker.withConnection(named: "jsm-migrate demo") { connection in
            try await connection.declare(MigrationBrokerTopology().declarations)
            try await checkQueuesEmpty(connection)
            try await LocalWorld.run(worldConfiguration, logger: logger) { world in
                let summary = world.sample.summary
                print(
                    "demo: \(summary.users) directory users (\(summary.licensed) licensed, \(summary.customers) "
                        + "customers), \(summary.requests + summary.softwareIssues) issues, "
                        + "\(world.sample.siteAccounts.count) accounts already on the local site; "
                        + "\(workers) worker processes; files in \(directory)")
                let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
                let migrationId = "demo-\(seed)"
                var request = world.request(migrationId, projects: projects, batchSize: batchSize)
                request.groups = true
                request.groupMembership = true
                // A cloud group that shares a server group's name: the report flags its reuse.
                _ = try await world.siteLocation.withSite(logger: logger) {
                    try await $0.createGroup(named: "All-Staff")
                }
                print(
                    "start \(migrationId): projects \(projects.joined(separator: ", ")), customers related, "
                        + "users related, --groups --group-membership (the site already has a group 'All-Staff')")
                fflush(nil)
                let progress = ProgressLine()
                let (_, verdict) = try await world.migrate(
                    request, connection: connection, timeout: .seconds(timeout), logger: logger,
                    onProgress: { _, done, total in progress.show(done, of: total) })
                progress.finish()
                let elapsed = started.duration(to: .now)
                print(
                    "aggregator: \(verdict.tally.batches.count) batches counted once, "
                        + "\(verdict.tally.duplicates) duplicate replies ignored, replies agree with the ledger: "
                        + "\(verdict.repliesMatchLedger ? "yes" : "NO"); "
                        + (verdict.reconciled ? "RECONCILED" : "NOT RECONCILED") + "\n")
                print(try await MigrationReport.load(from: world.ledger, migrationId: migrationId).rendered(as: .text))
                let identities = verdict.totals.overall.inScope
                print(
                    String(
                        format: "%d identities in %.1f s (%.0f/s end to end, generation and start-up included)",
                        identities, elapsed.seconds, Double(identities) / max(elapsed.seconds, 0.001)))
                print("\nverify (recount from the source database and the site, independently of the messages):")
                let verification = try await world.source.withSource { jira in
                    try await MigrationVerification.verify(
                        ledger: world.ledger, migrationId: migrationId, source: jira, site: world.siteLocation)
                }
                print(verification.rendered(), terminator: "")
                guard verification.passed else { throw ExitCode(1) }
                guard verdict.reconciled else { throw ExitCode(1) }
            }
        }
    }

    private func checkQueuesEmpty(_ connection: AMQPConnection) async throws {
        let queues = RPCMethod.allCases.map(\.queueName) + [MigrationTopology.resultsQueue]
        for queue in queues {
            if purge { _ = try await connection.purgeQueue(queue) }
            let ready = try await connection.queueCounts(queue).ready
            guard ready == 0 else {
                throw ValidationError("queue \(queue) holds \(ready) messages of another run: pass --purge to empty it")
            }
        }
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A one-line progress bar on standard error, redrawn in place on a terminal.
final class ProgressLine: Sendable {
    let interactive = isatty(STDERR_FILENO) != 0
    private let last = Mutex<(Int, Int)>((-1, 0))

    func show(_ done: Int, of total: Int) {
        let changed = last.withLock { previous in
            guard previous != (done, total) else { return false }
            previous = (done, total)
            return true
        }
        guard changed, total > 0, interactive || done == total || done % max(1, total / 4) == 0 else { return }
        let width = 30
        let filled = done * width / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(
            Data("\(interactive ? "\r" : "")[\(bar)] \(done)/\(total) batches\(interactive ? "" : "\n")".utf8))
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
