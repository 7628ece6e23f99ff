import AMQP
import Foundation
import JSMLedger
import JSMServices

/// One queue as `status` shows it: ready and consumers by passive declare (exact at that moment),
/// unacknowledged messages from the management API when it is configured and answers.
public struct QueueStatus: Sendable, Hashable, Encodable {
    /// The queue's name.
    public let name: String
    /// Whether the queue exists (nothing has declared the topology yet when it does not).
    public let present: Bool
    /// Messages ready for delivery.
    public let ready: UInt32
    /// Messages delivered and not yet acknowledged; `nil` without the management API.
    public let unacked: UInt32?
    /// Consumers attached.
    public let consumers: UInt32

    private enum CodingKeys: String, CodingKey { case name, present, ready, unacked, consumers }

    /// Encodes `unacked` as `null` when unknown, so that scripts see the field either way.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(present, forKey: .present)
        try container.encode(ready, forKey: .ready)
        try container.encode(unacked, forKey: .unacked)
        try container.encode(consumers, forKey: .consumers)
    }
}

/// One migration as `status` shows it.
public struct MigrationStatusLine: Sendable, Hashable {
    /// The migration as the ledger holds it.
    public let migration: MigrationRecord
    /// Its batches and items per state.
    public let progress: MigrationProgress

    /// Items in every batch.
    public var itemsTotal: Int { progress.items.values.reduce(0, +) }
    /// Items of batches that ended (done or discarded).
    public var itemsEnded: Int { progress.items[.done, default: 0] + progress.items[.discarded, default: 0] }
    /// Items per second over the recent window.
    public var rate: Double { Double(progress.recentItems) * 1000 / Double(max(1, progress.windowMilliseconds)) }
    /// Seconds until the pending items are done at the recent rate; `nil` without a rate.
    public var etaSeconds: Int? {
        let left = progress.items[.pending, default: 0]
        guard left > 0, rate > 0 else { return left == 0 ? 0 : nil }
        return Int((Double(left) / rate).rounded(.up))
    }
}

/// What `jsm-migrate status` prints: the queues, and the migrations with their progress.
public struct MigrationStatus: Sendable, Hashable {
    /// Every queue of the topology, in the order operators read them.
    public let queues: [QueueStatus]
    /// The migrations asked for (or every running one).
    public let migrations: [MigrationStatusLine]
    /// Why unacknowledged counts are missing although the management API was configured.
    public let managementError: String?

    /// Reads the queues by passive declare (and the management API, when given: a failure there
    /// is reported, not thrown) and the migrations from the ledger.
    ///
    /// - Parameter migrationId: one migration (an unknown id is an error), or `nil` for every
    ///   running migration.
    public static func take(
        ledger: Ledger, connection: AMQPConnection, migrationId: String?, management: ManagementAPI? = nil
    ) async throws -> MigrationStatus {
        let ids: [String]
        if let migrationId {
            guard try await ledger.migration(migrationId) != nil else {
                throw PipelineError(.invalidOptions, "the ledger has no migration '\(migrationId)'")
            }
            ids = [migrationId]
        } else {
            ids = try await ledger.migrationIds(inStates: [.running])
        }
        var lines: [MigrationStatusLine] = []
        for id in ids {
            guard let migration = try await ledger.migration(id) else { continue }
            lines.append(
                MigrationStatusLine(migration: migration, progress: try await ledger.progress(migrationId: id)))
        }
        var managed: [String: ManagementQueueCounts]?
        var managementError: String?
        if let management {
            do {
                managed = try await management.queues(vhost: connection.configuration.virtualHost)
            } catch {
                managementError = "\(error)"
            }
        }
        var queues: [QueueStatus] = []
        for name in MigrationBrokerTopology().queueNames {
            let counts: QueueCounts?
            do {
                counts = try await connection.queueCounts(name)
            } catch {
                // 404: nothing has declared the topology on this broker yet.
                guard error.code == .channelClosed, error.replyCode == 404 else { throw error }
                counts = nil
            }
            queues.append(
                QueueStatus(
                    name: name, present: counts != nil, ready: counts?.ready ?? 0,
                    unacked: counts == nil ? nil : managed.map { $0[name]?.unacked ?? 0 },
                    consumers: counts?.consumers ?? 0))
        }
        return MigrationStatus(queues: queues, migrations: lines, managementError: managementError)
    }

    /// Text for a terminal.
    public func text() -> String {
        let width = max(5, queues.map(\.name.count).max() ?? 5)
        func pad(_ text: String, _ count: Int) -> String {
            text.count >= count ? text : text + String(repeating: " ", count: count - text.count)
        }
        func right(_ text: String, _ count: Int) -> String {
            text.count >= count ? text : String(repeating: " ", count: count - text.count) + text
        }
        var lines = [pad("queue", width) + right("ready", 10) + right("unacked", 10) + right("consumers", 11)]
        for queue in queues {
            lines.append(
                pad(queue.name, width)
                    + (queue.present
                        ? right(String(queue.ready), 10) + right(queue.unacked.map(String.init) ?? "-", 10)
                            + right(String(queue.consumers), 11)
                        : right("(not declared)", 31)))
        }
        if let managementError {
            lines.append("unacked unknown: the management API failed: \(managementError)")
        } else if queues.allSatisfy({ $0.unacked == nil }) {
            lines.append("unacked: set --management-url (or JSM_RABBITMQ_MGMT_URL) to see them")
        }
        lines.append("")
        if migrations.isEmpty { lines.append("no running migration") }
        for line in migrations {
            let total = line.itemsTotal
            let ended = line.itemsEnded
            let filled = total == 0 ? 0 : ended * 30 / total
            let bar = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "]"
            let batches = line.progress.batches
            let eta = line.etaSeconds.map { "ETA \($0) s" } ?? "ETA unknown (nothing completed in the last minute)"
            lines.append(
                "migration \(line.migration.id): \(line.migration.state.rawValue), phase \(line.migration.phase.rawValue)"
            )
            lines.append(
                "  \(bar) \(ended)/\(total) items; batches: \(batches[.done, default: 0]) done, "
                    + "\(batches[.pending, default: 0]) pending (\(line.progress.retrying) retrying after a failure), "
                    + "\(batches[.parked, default: 0]) parked, \(batches[.discarded, default: 0]) discarded")
            lines.append(String(format: "  rate %.0f items/s over the last minute; ", line.rate) + eta)
            if batches[.parked, default: 0] > 0 {
                lines.append("  parked batches: jsm-migrate failed list --migration \(line.migration.id)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private struct JSONStatus: Encodable {
        struct Migration: Encodable {
            let id: String
            let state: String
            let phase: String
            let batches: [String: Int]
            let itemsTotal: Int
            let itemsEnded: Int
            let ratePerSecond: Double
            let etaSeconds: Int?
            let retrying: Int
        }
        let queues: [QueueStatus]
        let migrations: [Migration]
        let managementError: String?
    }

    /// JSON for scripts (snake_case keys).
    public func json() -> String {
        let report = JSONStatus(
            queues: queues,
            migrations: migrations.map { line in
                JSONStatus.Migration(
                    id: line.migration.id, state: line.migration.state.rawValue,
                    phase: line.migration.phase.rawValue,
                    batches: Dictionary(
                        uniqueKeysWithValues: line.progress.batches.map { ($0.key.rawValue, $0.value) }),
                    itemsTotal: line.itemsTotal, itemsEnded: line.itemsEnded, ratePerSecond: line.rate.rounded(),
                    etaSeconds: line.etaSeconds, retrying: line.progress.retrying)
            }, managementError: managementError)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        // Plain strings and numbers: encoding cannot fail.
        let data = (try? encoder.encode(report)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
