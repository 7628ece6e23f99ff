import AMQP
import AsyncHTTPClient
import Foundation
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import JSMSource
import NIOCore
import PostgresNIO
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The fault-injection suite's settings: its scale (`JSM_FAULT_USERS` directory users, 10,000 by
/// default so CI stays within its budget; `scripts/fault-suite.sh` runs it at ~100,000 identities)
/// and where each scenario appends its figures (`JSM_FAULT_REPORT`, one JSON line per scenario).
enum FaultSuite {
    static var users: Int { Int(EndToEnd.environment["JSM_FAULT_USERS"] ?? "") ?? 10_000 }

    /// Whether scenarios select every project (`ExpandProject` messages, the aggregator's cut) or
    /// none (the producer cuts): `JSM_FAULT_PROJECTS=none` at scale, where a debug build's workers
    /// take minutes to expand a project of 100,000 users.
    static var withProjects: Bool { EndToEnd.environment["JSM_FAULT_PROJECTS"] != "none" }

    /// The deadline of one scenario's migration: generous for a loaded 2-core machine (a debug
    /// build migrates a few thousand identities a second), never unbounded.
    static var timeout: Duration { .seconds(max(300, users / 150)) }

    /// Every in-scope customer and licensed user, requestless customers included: at
    /// 102,100 directory users the generator gives just over 100,000 identities.
    static let scope = ScopeOptions(customers: .all, includeRequestless: true, users: .all)

    private static let reportLock = Mutex(())

    /// Appends one scenario's figures to `JSM_FAULT_REPORT`, when set.
    static func report(_ figures: FaultFigures) throws {
        guard let path = EndToEnd.environment["JSM_FAULT_REPORT"], !path.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(figures)
        line.append(UInt8(ascii: "\n"))
        try reportLock.withLock { _ in
            if !FileManager.default.fileExists(atPath: path) {
                guard FileManager.default.createFile(atPath: path, contents: nil) else {
                    throw HarnessFailure("cannot create \(path)")
                }
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: line)
        }
    }
}

/// What one scenario injected and measured: the README's table is rendered from these.
struct FaultFigures: Codable, Sendable {
    var scenario = ""
    var injected = ""
    var checked = ""
    var directoryUsers = 0
    var identities = 0
    var batches = 0
    var seconds = 0.0
    var state = ""
    var siteAccounts = 0
    var newSiteAccounts = 0
    /// Batches the ledger recorded more than one attempt for (delayed retries).
    var retriedBatches = 0
    /// Failed attempts the ledger recorded over every batch.
    var failedAttempts = 0
    /// Redeliveries the surviving workers answered from the ledger (`jsm_batches_total{outcome="replayed"}`).
    var replayed = 0
    /// Replies for an already counted batch (`jsm_aggregator_replies_total{outcome="duplicate"}`, last aggregator).
    var duplicateReplies = 0
    /// 429/503 answers the surviving workers waited out (`jsm_site_throttled_total`).
    var throttled = 0
    /// How many times the fault was injected (kills, closes, restarts, injected answers).
    var injections = 0
    /// Anything else the scenario measured.
    var notes = ""
}

/// One running scenario: the world, its worker fleet and aggregator as separate processes (each
/// with its own metrics port), and the means to disturb them.
final class FaultRun: Sendable {
    let world: LocalWorld
    let connection: AMQPConnection
    let migrationId: String
    private let fleet = Mutex<[FleetProcess]>([])
    private let aggregators = Mutex<[FleetProcess]>([])
    private let spawned = Mutex(0)

    /// A process of the fleet and the port its metrics are served on.
    struct FleetProcess: Sendable {
        let processes: WorkerProcesses
        let metricsPort: Int
        var killed = false
    }

    /// One deadline for every wait of the scenario, so that a stalled migration fails once.
    let deadline: ContinuousClock.Instant

    init(world: LocalWorld, connection: AMQPConnection, migrationId: String) {
        self.world = world
        self.connection = connection
        self.migrationId = migrationId
        self.deadline = .now + FaultSuite.timeout
    }

    // MARK: Workers

    /// Starts a worker process and waits until it serves `/health` (its site check passed and it is
    /// connected to the broker).
    func spawnWorker() async throws {
        let index = spawned.withLock {
            $0 += 1
            return $0
        }
        let port = try EndToEnd.freeLoopbackPort()
        let processes = try world.spawnWorkers(
            1, executable: EndToEnd.executable, namePrefix: "fault-worker-\(index)",
            extraArguments: ["--metrics-port", "\(port)"])
        fleet.withLock { $0.append(FleetProcess(processes: processes, metricsPort: port)) }
        try await waitHealthy(port: port, processes: processes, what: "worker \(index)")
    }

    /// SIGKILL to the oldest live worker; waits for it to be gone. Returns whether one was killed.
    @discardableResult
    func killWorker() async throws -> Bool {
        let target = fleet.withLock { fleet -> WorkerProcesses? in
            guard let index = fleet.firstIndex(where: { !$0.killed }) else { return nil }
            fleet[index].killed = true
            return fleet[index].processes
        }
        guard let target else { return false }
        return try await Self.sigkill(target)
    }

    /// Workers that are still running (not killed by the scenario, not exited).
    var liveWorkers: [FleetProcess] {
        fleet.withLock { $0.filter { !$0.killed && $0.processes.exited.isEmpty } }
    }

    /// Workers that exited without being killed by the scenario: a crash.
    var crashedWorkers: Int {
        fleet.withLock { $0.filter { !$0.killed && !$0.processes.exited.isEmpty }.count }
    }

    // MARK: Aggregator

    /// Starts a `jsm-migrate aggregator` process (no `--migration`: it stays up after the migration,
    /// so its metrics can be read) and waits until it serves `/health`.
    func spawnAggregator() async throws {
        let index = aggregators.withLock { $0.count + 1 }
        let port = try EndToEnd.freeLoopbackPort()
        let processes = try WorkerProcesses.spawn(
            executable: EndToEnd.executable, count: 1,
            arguments: { _ in
                [
                    "aggregator", "--ledger", world.ledgerLocation.description, "--metrics-port", "\(port)",
                    "--log-level", "warning",
                ]
            }, environment: world.environment, logDirectory: world.directory, logName: "fault-aggregator-\(index)")
        aggregators.withLock { $0.append(FleetProcess(processes: processes, metricsPort: port)) }
        try await waitHealthy(port: port, processes: processes, what: "aggregator \(index)")
    }

    /// SIGKILL to the running aggregator; waits for it to be gone.
    @discardableResult
    func killAggregator() async throws -> Bool {
        let target = aggregators.withLock { all -> WorkerProcesses? in
            guard let index = all.lastIndex(where: { !$0.killed }) else { return nil }
            all[index].killed = true
            return all[index].processes
        }
        guard let target else { return false }
        return try await Self.sigkill(target)
    }

    var currentAggregator: FleetProcess? { aggregators.withLock { $0.last(where: { !$0.killed }) } }

    // MARK: Progress

    /// Batches done in the ledger and batches in all (0 before the cut); nil while the ledger
    /// cannot be read (a restart in progress).
    func progress() async -> (done: Int, total: Int)? {
        let id = migrationId
        guard let states = await read({ try await $0.batchStateCounts(migrationId: id, method: nil) }) else {
            return nil
        }
        return (states[.done, default: 0], states.values.reduce(0, +))
    }

    /// Polls that this process's own ledger client did not answer within 10 s (then a fresh
    /// client answered instead, on PostgreSQL).
    var stalledPolls: Int { stalls.withLock { $0 } }
    private let stalls = Mutex(0)

    /// Reads the ledger with a deadline: through the world's client, and on PostgreSQL, when that
    /// one does not answer within 10 s (a restart cut its connections), through a fresh client.
    func read<T: Sendable>(_ query: @escaping @Sendable (Ledger) async throws -> T) async -> T? {
        let ledger = world.ledger
        if let value = await FaultSuite.within(.seconds(10), { try await query(ledger) }) { return value }
        guard case .postgres = world.ledgerLocation.kind else { return nil }
        stalls.withLock { $0 += 1 }
        let location = world.ledgerLocation
        let environment = world.environment
        return await FaultSuite.within(.seconds(10)) {
            try await location.withLedger(environment: environment, logger: EndToEnd.logger) { try await query($0) }
        }
    }

    /// Waits (polling every 100 ms, at most `timeout`) until `fraction` of the batches are done;
    /// returns false when the migration finished or the deadline passed first.
    func waitForProgress(_ fraction: Double) async throws -> Bool {
        while ContinuousClock.now < deadline {
            if let progress = await progress(), progress.total > 0 {
                if try await finished() { return false }
                if Double(progress.done) >= max(1, fraction * Double(progress.total)) { return true }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Whether the migration has left `running` (complete or incomplete).
    func finished() async throws -> Bool {
        let id = migrationId
        guard let state = await read({ try await $0.migration(id)?.state }) ?? nil else { return false }
        return state == .complete || state == .incomplete
    }

    /// Waits until the migration has finished; fails when the deadline passes, every worker has
    /// died, or the aggregator crashed (was not killed by the scenario).
    func waitUntilFinished() async throws {
        while ContinuousClock.now < deadline {
            if try await finished() { return }
            if crashedWorkers > 0 { throw HarnessFailure("a worker exited by itself; see fault-worker-*.log") }
            if let aggregator = currentAggregator, !aggregator.processes.exited.isEmpty {
                throw HarnessFailure("the aggregator exited by itself: \(aggregator.processes.exited)")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        // Name what is stuck: the batches still pending and the messages held unacknowledged.
        let id = migrationId
        let pending = await read { ledger in
            try await ledger.batches(migrationId: id, state: .pending, limit: 10)
                .map { "\($0.batchId) (attempts \($0.attempts))" }
        }
        let queues = (try? await Self.unacknowledged(environment: world.environment)) ?? "unknown"
        throw HarnessFailure(
            "migration \(migrationId) did not finish within \(FaultSuite.timeout): pending batches "
                + "\(pending ?? ["unreadable"]); unacknowledged messages \(queues)")
    }

    /// `rabbitmqctl list_queues` of the world's vhost: the queues holding unacknowledged messages.
    static func unacknowledged(environment: [String: String]) async throws -> String {
        guard let url = environment["AMQP_URL"].flatMap(URLComponents.init(string:)),
            let vhost = url.path.dropFirst().removingPercentEncoding
        else { return "no vhost" }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let result = try await EndToEnd.runProcess(
            root.appendingPathComponent("scripts/services.sh"),
            ["rabbitmqctl", "list_queues", "-p", vhost, "name", "messages_unacknowledged", "-q", "--no-table-headers"])
        return result.output.split(separator: "\n").filter { !$0.hasSuffix("\t0") && !$0.hasSuffix(" 0") }
            .joined(separator: ", ")
    }

    // MARK: Metrics

    /// The sum of a counter over the live workers' `/metrics`, for the series whose labels contain
    /// every one of `labels`.
    func workerMetric(_ name: String, _ labels: [String] = []) async throws -> Int {
        var sum = 0
        for worker in liveWorkers {
            sum += try await Self.metric(port: worker.metricsPort, name, labels)
        }
        return sum
    }

    /// A counter of the current aggregator's `/metrics`.
    func aggregatorMetric(_ name: String, _ labels: [String] = []) async throws -> Int {
        guard let aggregator = currentAggregator else { throw HarnessFailure("no aggregator is running") }
        return try await Self.metric(port: aggregator.metricsPort, name, labels)
    }

    // MARK: Producer

    /// Starts `jsm-migrate start` for this scenario's migration (every customer and licensed user,
    /// no project, batches of 50) as its own process.
    func spawnProducer(name: String) throws -> WorkerProcesses {
        try WorkerProcesses.spawn(
            executable: EndToEnd.executable, count: 1,
            arguments: { _ in
                [
                    "start", "--migration", migrationId, "--source", world.source.description, "--ledger",
                    world.ledgerLocation.description, "--site-url", world.site.url, "--site-token-file",
                    world.tokenPath, "--site-id", world.siteLocation.siteId, "--users", "all", "--customers", "all",
                    "--include-requestless", "--batch-size", "50", "--log-level", "warning",
                ]
            }, environment: world.environment, logDirectory: world.directory, logName: name)
    }

    /// Polls the ledger every 5 ms and SIGKILLs the producer once some but not all of the
    /// migration's batches are recorded as published; returns how many were, or nil when the
    /// producer finished first (it must then have succeeded).
    func killProducerMidPublish(_ producer: WorkerProcesses) async throws -> (published: Int, total: Int)? {
        while ContinuousClock.now < deadline {
            if let exited = producer.exited.first {
                #expect(exited.status == 0, "the first start exited with \(exited.status)")
                return nil
            }
            let id = migrationId
            if let migration = await read({ try await $0.migration(id) }) ?? nil,
                migration.phase == .migrate, let total = migration.batchCount, total > 0,
                let unpublished = await read({ try await $0.unpublishedBatches(migrationId: id, limit: total) }),
                unpublished.count < total
            {
                guard try await Self.sigkill(producer) else {
                    #expect(producer.exited.first?.status == 0, "the first start exited with \(producer.exited)")
                    return nil
                }
                return (total - unpublished.count, total)
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw HarnessFailure("the producer published nothing within \(FaultSuite.timeout)")
    }

    /// Waits (at most the suite's timeout) for a one-process fleet to exit; returns its status.
    func waitForExit(_ processes: WorkerProcesses) async throws -> Int32 {
        while ContinuousClock.now < deadline {
            if let exited = processes.exited.first { return exited.status }
            try await Task.sleep(for: .milliseconds(100))
        }
        await processes.terminate()
        throw HarnessFailure("a process did not exit within \(FaultSuite.timeout)")
    }

    /// Stops every process of the scenario (SIGTERM, then SIGKILL after 10 s).
    func stopAll() async {
        for process in fleet.withLock({ $0 }) { await process.processes.terminate() }
        for process in aggregators.withLock({ $0 }) { await process.processes.terminate() }
    }

    // MARK: Helpers

    static func metric(port: Int, _ name: String, _ labels: [String]) async throws -> Int {
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(10))
        let body = String(buffer: try await response.body.collect(upTo: 8 << 20))
        guard response.status == .ok else { throw HarnessFailure("/metrics on \(port) answered \(response.status)") }
        var sum = 0.0
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            guard line.hasPrefix(name + "{") || line.hasPrefix(name + " ") else { continue }
            guard labels.allSatisfy({ line.contains($0) }) else { continue }
            sum += Double(line.split(separator: " ").last ?? "") ?? 0
        }
        return Int(sum)
    }

    /// Waits (at most 60 s) until a process serves `/health`; fails early when it exits.
    private func waitHealthy(port: Int, processes: WorkerProcesses, what: String) async throws {
        for _ in 0..<600 {
            if !processes.exited.isEmpty {
                throw HarnessFailure("\(what) exited before it was ready: \(processes.exited)")
            }
            let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/health")
            if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)),
                response.status == .ok
            {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessFailure("\(what) did not serve /health within 60 s")
    }

    /// SIGKILL to a one-process fleet; waits (at most 10 s) until it is gone. Returns whether it
    /// was still running when killed.
    static func sigkill(_ processes: WorkerProcesses) async throws -> Bool {
        guard let pid = processes.processIdentifiers.first, processes.exited.isEmpty else { return false }
        kill(pid, SIGKILL)
        for _ in 0..<200 where processes.exited.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        guard let status = processes.exited.first?.status else { throw HarnessFailure("pid \(pid) survived SIGKILL") }
        return status == SIGKILL
    }
}

extension FaultSuite {
    /// What every scenario checks, as the issue words it.
    static let checks =
        "completes; verdict reconciled and verify passes; one site account per (email, type), none outside the ledger; "
        + "every identity mapped; no batch counted twice, duplicates in metrics"

    /// Runs one scenario: a world of `users` directory users with `workers` worker processes and
    /// an aggregator process, the migration of every customer and licensed user (with every
    /// project when `projects`), `inject` disturbing it while it runs, then every check of the
    /// issue. `startsItself`: `inject` starts the migration (the producer scenario); otherwise it
    /// is started in this process before `inject` runs.
    @discardableResult
    static func run(
        _ scenario: String, injected: String, workers: Int = 2, ledger: LedgerLocation? = nil, projects: Bool = true,
        batchSize: Int = 500, startsItself: Bool = false,
        inject: @Sendable (FaultRun, StartRequest) async throws -> FaultFigures
    ) async throws -> FaultFigures {
        let migrationId = "fault-\(scenario)"
        return try await EndToEnd.withWorld(users: users, seed: 11, workers: 0, ledger: ledger) { world, connection in
            let run = FaultRun(world: world, connection: connection, migrationId: migrationId)
            do {
                for _ in 0..<workers { try await run.spawnWorker() }
                try await run.spawnAggregator()
                let keys =
                    projects && withProjects
                    ? try await world.source.withSource { try await $0.projects().map(\.key) } : []
                let request = world.request(migrationId, projects: keys, scope: scope, batchSize: batchSize)
                let started = ContinuousClock.now
                if !startsItself {
                    _ = try await world.source.withSource { jira in
                        try await MigrationProducer(ledger: world.ledger, source: jira, logger: EndToEnd.logger)
                            .start(request, connection: connection)
                    }
                }
                var figures = try await inject(run, request)
                figures.scenario = scenario
                figures.injected = injected
                try await run.waitUntilFinished()
                let elapsed = started.duration(to: .now).components
                figures.seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
                if run.stalledPolls > 0 {
                    figures.notes += "\(run.stalledPolls) ledger polls of the test needed a fresh client"
                }
                if ledger == nil {
                    try await check(run, ledger: world.ledger, &figures)
                } else {
                    // After a PostgreSQL restart, the checks read through a client of their own:
                    // this process's first one may hold connections the restart cut.
                    figures = try await world.ledgerLocation.withLedger(
                        environment: world.environment, logger: EndToEnd.logger
                    ) { fresh in
                        var checked = figures
                        try await check(run, ledger: fresh, &checked)
                        return checked
                    }
                }
                await run.stopAll()
                try FaultSuite.report(figures)
                return figures
            } catch {
                await run.stopAll()
                throw error
            }
        }
    }

    /// Every check of the issue, recording the figures.
    private static func check(_ run: FaultRun, ledger: Ledger, _ figures: inout FaultFigures) async throws {
        let world = run.world
        let id = run.migrationId
        figures.directoryUsers = users
        figures.checked = checks
        // Metrics first, while every process still runs.
        figures.replayed = try await run.workerMetric(PipelineMetrics.batches, [#"outcome="replayed""#])
        figures.throttled = try await run.workerMetric("jsm_site_throttled_total")
        figures.duplicateReplies = try await run.aggregatorMetric(PipelineMetrics.replies, [#"outcome="duplicate""#])
        let counted = try await run.aggregatorMetric(PipelineMetrics.replies, [#"outcome="counted""#])

        // Completes, and the invariant holds exactly: the aggregator's verdict (rebuilt from the
        // ledger by a fresh aggregator, as after any restart) and an independent recount.
        let migration = try #require(try await ledger.migration(id))
        figures.state = migration.state.rawValue
        #expect(migration.state == .complete || migration.state == .incomplete, "\(migration.state)")
        let aggregator = MigrationAggregator(ledger: ledger, logger: EndToEnd.logger)
        let verdict = try #require(
            try await aggregator.run(connection: run.connection, until: id, checkInterval: .seconds(1)))
        #expect(verdict.reconciled, "missing: \(verdict.missing)")
        #expect(verdict.totals.invariantHolds && verdict.repliesMatchLedger)
        let batches = verdict.batchStates.values.reduce(0, +)
        figures.batches = batches
        #expect(verdict.batchStates[.done, default: 0] == batches, "\(verdict.batchStates)")
        let verification = try await world.source.withSource { jira in
            try await MigrationVerification.verify(
                ledger: ledger, migrationId: id, source: jira, site: world.siteLocation, logger: EndToEnd.logger)
        }
        #expect(verification.passed, "\(verification.rendered())")

        // The site: one account per (normalised email, account type); none the ledger does not know.
        let accounts = try await EndToEnd.siteAccounts(world.site)
        let key = { (account: EndToEnd.SiteAccount) in "\(account.emailAddress.lowercased())|\(account.accountType)" }
        #expect(Set(accounts.map(key)).count == accounts.count, "two accounts for one (email, type)")
        let seeded = Set(world.sample.siteAccounts.map { "\($0.email.value)|\($0.type.rawValue)" })
        let mappings = try await EndToEnd.mappings(ledger, siteId: world.siteLocation.siteId)
        let mapped = Set(mappings.values.compactMap(\.accountId))
        let created = accounts.filter { !seeded.contains(key($0)) }
        let unknown = created.filter { !mapped.contains($0.accountId) }
        #expect(unknown.isEmpty, "\(unknown.count) site accounts the ledger does not hold")
        figures.siteAccounts = accounts.count
        figures.newSiteAccounts = created.count

        // No identity lost: every in-scope identity has its mapping row and outcome.
        let scope = try await EndToEnd.scopeKeys(ledger, id)
        figures.identities = scope.count
        #expect(scope.count == verdict.totals.overall.inScope)
        let lost = scope.filter { mappings[$0] == nil }
        #expect(lost.isEmpty, "\(lost.count) identities without a mapping, e.g. \(lost.prefix(5))")

        // Duplicates absorbed and counted: the last aggregator never counted a batch twice (a
        // second reply is `duplicate` in its metric), redeliveries answered from the ledger are
        // `replayed` in the workers' metric (figures: how many depends on timing).
        #expect(counted <= batches, "the aggregator counted \(counted) replies for \(batches) batches")
        let ledgerBatches = try await ledger.batches(migrationId: id, limit: 1_000_000)
        figures.retriedBatches = ledgerBatches.filter { $0.attempts > 1 }.count
        figures.failedAttempts = ledgerBatches.reduce(0) { $0 + max(0, $1.attempts - 1) }
    }

    /// The result of `operation`, or nil when it fails or has not answered within `limit` (then
    /// it is cancelled and left behind): a poll of the ledger must not hang a scenario on a
    /// connection that a restart cut.
    static func within<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async
        -> T?
    {
        let once = Once<T?>()
        return await withCheckedContinuation { continuation in
            once.set(continuation)
            let work = Task {
                let value = try? await operation()
                once.resume(value)
            }
            Task {
                try? await Task.sleep(for: limit)
                work.cancel()
                once.resume(nil)
            }
        }
    }

    /// Runs `body` with a ledger in a PostgreSQL schema of its own, dropped afterwards.
    static func withPostgresLedger(_ body: (LedgerLocation) async throws -> Void) async throws {
        let schema = "fault_\(UInt32.random(in: 0...UInt32.max))"
        let location = try #require(LedgerLocation("postgres:\(schema)"))
        do {
            try await body(location)
            try await dropSchema(schema)
        } catch {
            try? await dropSchema(schema)
            throw error
        }
    }

    private static func dropSchema(_ schema: String) async throws {
        try await postgres("DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE")
    }

    /// Runs statements on the services' PostgreSQL as the tests' role, one after the other.
    static func postgres(_ statements: String...) async throws {
        let configuration = try PostgresSourceDatabase.configuration(fromEnvironment: EndToEnd.environment)
        let client = PostgresClient(configuration: configuration, backgroundLogger: EndToEnd.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await client.withConnection { connection in
                for statement in statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: EndToEnd.logger)
                }
            }
        }
    }

    /// Arms a burst on the local site: its next `failures` Atlassian requests answer `status`.
    static func armBurst(_ site: LocalSite, failures: Int, status: Int) async throws {
        var request = HTTPClientRequest(
            url: site.url + "/_local/v1/faults?mode=burst&failures=\(failures)&status=\(status)")
        request.method = .POST
        request.headers.add(name: "Authorization", value: authorization(site))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .accepted else {
            throw HarnessFailure("the site did not arm a burst: \(response.status)")
        }
    }

    /// The answers the site's bursts sent so far (`/_local/v1/counts`, `injectedBurstFaults`).
    static func injectedBurst(_ site: LocalSite) async throws -> Int {
        struct Counts: Decodable { let injectedBurstFaults: Int }
        var request = HTTPClientRequest(url: site.url + "/_local/v1/counts")
        request.headers.add(name: "Authorization", value: authorization(site))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return try JSONDecoder().decode(Counts.self, from: Data(buffer: body)).injectedBurstFaults
    }

    static func authorization(_ site: LocalSite) -> String {
        "Basic " + Data("faults@example.com:\(site.token)".utf8).base64EncodedString()
    }

    /// Runs `scripts/services.sh ARGS` (the project's own services, as the environment names them).
    static func services(_ arguments: [String]) async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let result = try await EndToEnd.runProcess(root.appendingPathComponent("scripts/services.sh"), arguments)
        guard result.status == 0 else {
            throw HarnessFailure("services.sh \(arguments.joined(separator: " ")) failed: \(result.error)")
        }
    }
}

/// A continuation resumed once, by whichever of a ``FaultSuite/within(_:_:)`` race ends first.
private final class Once<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, Never>?>(nil)

    func set(_ continuation: CheckedContinuation<T, Never>) { self.continuation.withLock { $0 = continuation } }

    func resume(_ value: T) { continuation.withLock { $0.take() }?.resume(returning: value) }
}
