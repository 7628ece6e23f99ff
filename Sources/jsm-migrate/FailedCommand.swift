import ArgumentParser
import Foundation
import JSMLedger
import JSMPipeline
import Logging

/// `jsm-migrate failed list | show | retry | discard`: the parked batches of a migration, grouped
/// by error, and what an operator does with them once the cause is fixed.
struct FailedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failed",
        abstract: "Parked batches: list them by error, show one, retry or discard them.",
        discussion: """
            A batch is parked when its retries ran out or when it cannot succeed without an operator \
            (a refused site token, a message that cannot be decoded). The ledger is the source of truth; \
            the copies in the jsm.parked queue are an audit trail.

            retry puts batches back to pending and publishes them again (an aggregator must run to count \
            them and finish the migration). discard records every identity, group or membership of a \
            batch as rejected (reason: discarded), so the totals still reconcile; it cannot be undone.
            """,
        subcommands: [List.self, Show.self, Retry.self, Discard.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parked batches grouped by error.")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var ledger: LedgerOptions

        @Option(help: "The migration's id.")
        var migration: String

        func run() async throws {
            global.bootstrapLogging()
            let location = try ledger.location
            try requireExistingLedger(location)
            let migrationId = migration
            try await location.withLedger { ledger in
                guard try await ledger.migration(migrationId) != nil else {
                    throw PipelineError(.invalidOptions, "the ledger has no migration '\(migrationId)'")
                }
                let groups = try await FailedBatches.groups(ledger: ledger, migrationId: migrationId)
                let discarded = try await ledger.failedBatches(migrationId: migrationId).filter {
                    $0.state == .discarded
                }
                let parked = groups.reduce(0) { $0 + $1.batches.count }
                print("migration \(migrationId): \(parked) parked batch(es), \(discarded.count) discarded")
                for group in groups {
                    let ids = group.batches.prefix(10).map(\.batchId).joined(separator: ", ")
                    let more = group.batches.count > 10 ? ", ..." : ""
                    print("")
                    print("group \(group.number): \(group.batches.count) batch(es)")
                    print("  error: \(group.sample)")
                    print("  batches: \(ids)\(more)")
                }
                if !groups.isEmpty {
                    print("\nretry: jsm-migrate failed retry --migration \(migrationId) --group N | --batch ID | --all")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One batch: state, attempts, times, last error.")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var ledger: LedgerOptions

        @Option(help: "The migration's id.")
        var migration: String

        @Option(help: "The batch's id.")
        var batch: String

        func run() async throws {
            global.bootstrapLogging()
            let location = try ledger.location
            try requireExistingLedger(location)
            let (migrationId, batchId) = (migration, batch)
            try await location.withLedger { ledger in
                guard try await ledger.migration(migrationId) != nil else {
                    throw PipelineError(.invalidOptions, "the ledger has no migration '\(migrationId)'")
                }
                guard let batch = try await ledger.batch(migrationId: migrationId, batchId: batchId) else {
                    throw PipelineError(.invalidOptions, "no batch '\(batchId)' in \(migrationId)")
                }
                func time(_ milliseconds: Int64?) -> String {
                    guard let milliseconds else { return "-" }
                    return ISO8601DateFormatter().string(
                        from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
                }
                print("batch \(batch.batchId) of \(migrationId)")
                print("  method: \(batch.method), sequence \(batch.sequence), items: \(batch.identityCount)")
                print("  state: \(batch.state.rawValue), attempts: \(batch.attempts)")
                print("  first attempt: \(time(batch.firstAttemptAtMilliseconds))")
                print("  last attempt: \(time(batch.lastAttemptAtMilliseconds))")
                print("  completed: \(time(batch.completedAtMilliseconds))")
                print("  last error: \(batch.lastError ?? "-")")
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put parked batches back to pending and publish them again.")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var broker: BrokerOptions
        @OptionGroup var ledger: LedgerOptions

        @Option(help: "The migration's id.")
        var migration: String

        @Option(name: .customLong("batch"), help: "A parked batch to retry (repeatable).")
        var batches: [String] = []

        @Option(help: "Retry every batch of this error group (the number `failed list` shows).")
        var group: Int?

        @Flag(help: "Retry every parked batch of the migration.")
        var all = false

        func validate() throws {
            let ways = (batches.isEmpty ? 0 : 1) + (group == nil ? 0 : 1) + (all ? 1 : 0)
            guard ways == 1 else { throw ValidationError("give exactly one of --batch, --group and --all") }
        }

        func run() async throws {
            global.bootstrapLogging()
            let location = try ledger.location
            try requireExistingLedger(location)
            let (migrationId, named, group, all) = (migration, batches, group, all)
            let logger = Logger(label: "jsm.failed")
            let (count, published) = try await location.withLedger { ledger in
                let ids: [String]
                if named.isEmpty {
                    guard try await ledger.migration(migrationId) != nil else {
                        throw PipelineError(.invalidOptions, "the ledger has no migration '\(migrationId)'")
                    }
                    let groups = try await FailedBatches.groups(ledger: ledger, migrationId: migrationId)
                    if all {
                        ids = groups.flatMap(\.batches).map(\.batchId)
                    } else {
                        guard let chosen = groups.first(where: { $0.number == group }) else {
                            throw PipelineError(
                                .invalidOptions,
                                "no error group \(group ?? 0) in \(migrationId): it has \(groups.count) "
                                    + "(see jsm-migrate failed list)")
                        }
                        ids = chosen.batches.map(\.batchId)
                    }
                    guard !ids.isEmpty else {
                        throw PipelineError(.invalidOptions, "migration \(migrationId) has no parked batch")
                    }
                } else {
                    ids = named
                }
                // Checked before the broker is touched: a wrong id moves nothing.
                _ = try await FailedBatches.requireParked(ledger: ledger, migrationId: migrationId, batchIds: ids)
                let published = try await broker.withConnection(named: "jsm-migrate failed retry") { connection in
                    try await FailedBatches.retry(
                        ledger: ledger, connection: connection, migrationId: migrationId, batchIds: ids, logger: logger)
                }
                return (ids.count, published)
            }
            print(
                "\(count) batch(es) of \(migrationId) back to pending; \(published) published. "
                    + "An aggregator counts them and finishes the migration: "
                    + "jsm-migrate aggregator --migration \(migrationId)")
        }
    }

    struct Discard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record every item of parked batches as rejected (discarded); cannot be undone.")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var broker: BrokerOptions
        @OptionGroup var ledger: LedgerOptions

        @Option(help: "The migration's id.")
        var migration: String

        @Option(name: .customLong("batch"), help: "A parked batch to discard (repeatable).")
        var batches: [String] = []

        func validate() throws {
            guard !batches.isEmpty else { throw ValidationError("name the batches to discard with --batch") }
        }

        func run() async throws {
            global.bootstrapLogging()
            let location = try ledger.location
            try requireExistingLedger(location)
            let (migrationId, ids) = (migration, batches)
            let rejected = try await location.withLedger { ledger in
                _ = try await FailedBatches.requireParked(ledger: ledger, migrationId: migrationId, batchIds: ids)
                return try await broker.withConnection(named: "jsm-migrate failed discard") { connection in
                    try await FailedBatches.discard(
                        ledger: ledger, connection: connection, migrationId: migrationId, batchIds: ids,
                        workerId: "failed-discard@\(ProcessInfo.processInfo.hostName)")
                }
            }
            print(
                "\(ids.count) batch(es) of \(migrationId) discarded: \(rejected) item(s) recorded as rejected "
                    + "(reason: discarded); the report lists them")
        }
    }
}
