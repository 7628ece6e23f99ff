import AMQP
import ArgumentParser
import Foundation
import JSMContracts
import JSMDomain
import JSMServices
import Logging

/// The end-to-end run that exists today: sample identities, cut into batches, through the real
/// broker to worker loops that apply the migration rules, and replies reconciled by an aggregator.
///
/// Until the cloud site and the ledger are wired in, the workers plan against an empty site
/// (what `start --dry-run` predicts); the message flow, confirms, acks and reconciliation are real.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run sample identities through the broker, the rules and the aggregator, and reconcile.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var broker: BrokerOptions

    @Option(help: "Sample identities to generate.")
    var identities = 20_000

    @Option(help: "Identities per batch (one email is never split across batches).")
    var batchSize = 500

    @Option(help: "Worker loops, each with its own broker connection.")
    var workers = 2

    @Option(help: "Seed of the sample generator: same seed, same identities.")
    var seed: UInt64 = 42

    @Option(help: "Give up after this many seconds.")
    var timeout = 300

    @Flag(help: "Empty the identity work queue and the results queue first (they must otherwise be empty).")
    var purge = false

    func validate() throws {
        guard identities > 0, identities <= 5_000_000 else { throw ValidationError("--identities must be 1...5000000") }
        guard batchSize > 0, batchSize <= 10_000 else { throw ValidationError("--batch-size must be 1...10000") }
        guard workers > 0, workers <= 64 else { throw ValidationError("--workers must be 1...64") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        global.bootstrapLogging()
        let logger = Logger(label: "jsm.demo")
        let migrationID = "demo-\(seed)-\(Int(Date().timeIntervalSince1970))"
        let sample = SampleIdentities(count: identities, seed: seed).make()
        let batches = IdentityBatching.batches(of: sample, size: batchSize, migrationID: migrationID)
        print("demo \(migrationID): \(sample.count) identities in \(batches.count) batches, \(workers) workers")
        fflush(nil)  // the header line before the progress bar on standard error

        let started = ContinuousClock.now
        let outcome = try await broker.withConnection(named: "jsm-migrate demo producer") { producer in
            try await producer.declare(MigrationBrokerTopology().declarations)
            for queue in [RPCMethod.migrateIdentities.queueName, MigrationTopology.resultsQueue] {
                if purge { try await producer.purgeQueue(queue) }
                let ready = try await producer.queueCounts(queue).ready
                guard ready == 0 else {
                    throw ValidationError(
                        "queue \(queue) holds \(ready) messages of another run: pass --purge to empty it")
                }
            }
            return try await withThrowingTaskGroup(of: DemoAggregate?.self) { group in
                group.addTask {
                    try await collectReplies(migrationID: migrationID, expectedBatches: batches.count)
                }
                for index in 0..<workers {
                    group.addTask {
                        try await work(workerID: "demo-worker-\(index + 1)", logger: logger)
                        return nil
                    }
                }
                // The whole run is bounded in time, even if no reply ever comes.
                group.addTask {
                    try await Task.sleep(for: .seconds(timeout))
                    throw ValidationError("timed out after \(timeout) s before every batch was answered")
                }
                for chunk in stride(from: 0, to: batches.count, by: 20) {
                    let messages = try batches[chunk..<min(chunk + 20, batches.count)].map {
                        try RPCEnvelope.request(.migrateIdentities, header: $0.header, body: $0)
                    }
                    try await producer.publish(messages)
                }
                logger.info("published and confirmed", metadata: ["batches": "\(batches.count)"])
                while let finished = try await group.next() {
                    if let finished {
                        group.cancelAll()
                        return finished
                    }
                }
                throw ValidationError("the aggregator ended without a result")
            }
        }
        let elapsed = started.duration(to: .now)
        print(outcome.report(expected: sample, batches: batches.count, elapsed: elapsed))
        guard outcome.reconciles(with: sample, batches: batches.count) else {
            throw ExitCode(1)
        }
    }

    /// A worker loop: decode, apply the rules, reply, then ack; park what cannot be handled.
    /// A delivery is acked only after its reply (or its parked copy) is confirmed, so no failure drops it.
    private func work(workerID: String, logger: Logger) async throws {
        do {
            try await broker.withConnection(named: "jsm-migrate \(workerID)") { connection in
                let consumer = try await connection.consume(queue: RPCMethod.migrateIdentities.queueName, prefetch: 16)
                for try await delivery in consumer {
                    let attempt = UInt32(clamping: delivery.properties.headers[HeaderName.attempt]?.intValue ?? 1)
                    let planned = Result { () throws(RPCEnvelope.Unusable) in
                        let method = try RPCEnvelope.requestMethod(of: delivery)
                        guard method == .migrateIdentities else {
                            throw RPCEnvelope.Unusable(
                                reason: .unknownMethod, detail: "\(method) on the identity queue")
                        }
                        let batch = try RPCEnvelope.decode(JSMIdentityBatch.self, from: delivery)
                        return (batch, try PlannedBatch.result(for: batch, workerID: workerID, attempt: attempt))
                    }
                    switch planned {
                    case .success(let (batch, result)):
                        if let reply = try RPCEnvelope.reply(
                            to: .migrateIdentities, request: delivery.properties, header: batch.header, body: result,
                            attempt: Int(attempt))
                        {
                            try await connection.publish(reply)
                        }
                    case .failure(let unusable):
                        logger.error("parking a message", metadata: ["reason": "\(unusable)"])
                        try await connection.publish(RPCEnvelope.parked(delivery, because: unusable))
                    }
                    delivery.ack()
                }
            }
        } catch is CancellationError {
            // The aggregator has every reply: the run is over.
        }
    }

    /// Counts each batch's reply once and returns when every batch has answered.
    private func collectReplies(migrationID: String, expectedBatches: Int) async throws -> DemoAggregate {
        let progress = ProgressLine(total: expectedBatches)
        let aggregate = try await broker.withConnection(named: "jsm-migrate demo aggregator") { connection in
            var aggregate = DemoAggregate()
            let consumer = try await connection.consume(queue: MigrationTopology.resultsQueue, prefetch: 64)
            for try await delivery in consumer {
                guard delivery.properties.headers[HeaderName.migrationID]?.stringValue == migrationID,
                    delivery.properties.type == RPCMethod.migrateIdentities.replyTypeProperty
                else {
                    delivery.reject(requeue: true)
                    continue
                }
                aggregate.add(try JSMBatchResult(serializedBytes: delivery.body))
                delivery.ack()
                progress.show(aggregate.batches.count)
                if aggregate.batches.count == expectedBatches { break }
            }
            consumer.cancel()
            return aggregate
        }
        progress.finish()
        return aggregate
    }
}

/// What the aggregator collected: each batch once, totals per identity class.
struct DemoAggregate: Sendable {
    var batches: Set<String> = []
    var duplicates = 0
    var customers = JSMOutcomeTotals()
    var licensedUsers = JSMOutcomeTotals()
    var formers = JSMOutcomeTotals()
    var flags: [JSMOutcomeFlag: Int] = [:]

    mutating func add(_ result: JSMBatchResult) {
        guard batches.insert(result.header.batchID).inserted else {
            duplicates += 1
            return
        }
        customers.add(result.customers)
        licensedUsers.add(result.licensedUsers)
        formers.add(result.formers)
        for row in result.results {
            for flag in row.flags { flags[flag, default: 0] += 1 }
        }
    }

    static func inScope(_ identities: [ServerIdentity]) -> (customers: Int, licensed: Int, formers: Int) {
        var counts = (customers: 0, licensed: 0, formers: 0)
        for identity in identities {
            switch identity.kind {
            case .customer: counts.customers += 1
            case .licensedUser: counts.licensed += 1
            case .deleted, .inactiveDirectory: counts.formers += 1
            }
        }
        return counts
    }

    func reconciles(with identities: [ServerIdentity], batches expected: Int) -> Bool {
        let scope = Self.inScope(identities)
        return batches.count == expected && customers.accountedFor == UInt64(scope.customers)
            && licensedUsers.accountedFor == UInt64(scope.licensed) && formers.accountedFor == UInt64(scope.formers)
    }

    func report(expected identities: [ServerIdentity], batches expected: Int, elapsed: Duration) -> String {
        let scope = Self.inScope(identities)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        func row(_ name: String, _ inScope: Int, _ t: JSMOutcomeTotals) -> String {
            let cells = [
                inScope, Int(t.created), Int(t.linked), Int(t.former), Int(t.rejected), Int(t.alreadyMigrated),
            ]
            let verdict = t.accountedFor == UInt64(inScope) ? "ok" : "MISMATCH"
            return name.padding(toLength: 15, withPad: " ", startingAt: 0)
                + cells.map { String($0).leftPadded(10) }.joined() + "  " + verdict
        }
        var lines = [
            "",
            "class" + String(repeating: " ", count: 10)
                + ["in scope", "created", "linked", "former", "rejected", "already"].map { $0.leftPadded(10) }.joined(),
            row("customers", scope.customers, customers),
            row("licensed users", scope.licensed, licensedUsers),
            row("formers", scope.formers, formers),
            "",
            "flags: "
                + flags.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key) \($0.value)" }
                .joined(separator: ", "),
            "batches answered: \(batches.count) of \(expected); duplicate replies absorbed: \(duplicates)",
            String(format: "%.1f s, %.0f identities/s end to end", seconds, Double(identities.count) / seconds),
        ]
        lines.append(
            reconciles(with: identities, batches: expected)
                ? "RECONCILED: every identity accounted for exactly once (planned against an empty site)"
                : "NOT RECONCILED")
        return lines.joined(separator: "\n")
    }
}

/// A one-line progress bar on standard error, redrawn in place on a terminal.
final class ProgressLine: Sendable {
    let total: Int
    let interactive = isatty(STDERR_FILENO) != 0

    init(total: Int) { self.total = total }

    func show(_ done: Int) {
        guard interactive || done == total || done % max(1, total / 4) == 0 else { return }
        let width = 30
        let filled = total == 0 ? width : done * width / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(
            Data("\(interactive ? "\r" : "")[\(bar)] \(done)/\(total) batches\(interactive ? "" : "\n")".utf8))
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
