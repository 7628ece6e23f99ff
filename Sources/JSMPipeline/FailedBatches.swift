import AMQP
import JSMContracts
import JSMDomain
import JSMLedger
import JSMServices
import Logging

/// Parked batches of one kind of error: what `failed list` shows and `failed retry --group` takes.
public struct FailedBatchGroup: Sendable, Hashable {
    /// 1-based, largest group first: the number operators pass to `--group`.
    public let number: Int
    /// The error with its numbers blanked: batches that failed the same way share it.
    public let key: String
    /// One of the errors as recorded.
    public let sample: String
    /// The parked batches, by method then sequence.
    public let batches: [LedgerBatch]
}

/// What an operator does with parked batches once the cause is understood: retry them (the
/// ledger puts them back to pending, the aggregator or this call publishes them again) or discard
/// them (their identities, groups or memberships are recorded as rejected, so the totals still
/// reconcile). The ledger is the source of truth; the copies in `jsm.parked` are an audit trail.
public enum FailedBatches {
    /// Parked batches grouped by error, largest group first, then by error text.
    public static func groups(ledger: Ledger, migrationId: String) async throws -> [FailedBatchGroup] {
        let parked = try await ledger.failedBatches(migrationId: migrationId).filter { $0.state == .parked }
        var byKey: [String: [LedgerBatch]] = [:]
        for batch in parked { byKey[key(batch.lastError), default: []].append(batch) }
        let ordered = byKey.sorted { ($1.value.count, $0.key) < ($0.value.count, $1.key) }
        return ordered.enumerated().map { index, entry in
            FailedBatchGroup(
                number: index + 1, key: entry.key, sample: entry.value.first?.lastError ?? "(no error recorded)",
                batches: entry.value)
        }
    }

    /// The grouping key of an error: digit runs become `#` (attempt counts, statuses, ids), at
    /// most 200 characters.
    static func key(_ error: String?) -> String {
        guard let error, !error.isEmpty else { return "(no error recorded)" }
        var key = ""
        var inDigits = false
        for character in error.prefix(200) {
            if character.isASCII, character.isNumber {
                if !inDigits { key.append("#") }
                inDigits = true
            } else {
                key.append(character)
                inDigits = false
            }
        }
        return key
    }

    /// Checks that every id names a batch of the migration in state `parked`, before anything moves.
    ///
    /// - Throws: ``PipelineError`` `invalidOptions` naming every id that is unknown or not parked.
    public static func requireParked(ledger: Ledger, migrationId: String, batchIds: [String]) async throws
        -> [LedgerBatch]
    {
        guard try await ledger.migration(migrationId) != nil else {
            throw PipelineError(.invalidOptions, "the ledger has no migration '\(migrationId)'")
        }
        var batches: [LedgerBatch] = []
        var problems: [String] = []
        for id in batchIds {
            guard let batch = try await ledger.batch(migrationId: migrationId, batchId: id) else {
                problems.append("no batch '\(id)' in \(migrationId)")
                continue
            }
            guard batch.state == .parked else {
                problems.append("batch \(id) is \(batch.state.rawValue), not parked")
                continue
            }
            batches.append(batch)
        }
        guard problems.isEmpty else { throw PipelineError(.invalidOptions, problems.joined(separator: "; ")) }
        return batches
    }

    /// Puts parked batches back to pending (one ledger transaction each) and publishes them with
    /// confirms. Interrupted half way, each batch is either still parked or pending and offered to
    /// the next publishing pass (the aggregator's, or this command run again): nothing is lost.
    /// Returns the number published now.
    public static func retry(
        ledger: Ledger, connection: AMQPConnection, migrationId: String, batchIds: [String], logger: Logger
    ) async throws -> Int {
        _ = try await requireParked(ledger: ledger, migrationId: migrationId, batchIds: batchIds)
        for id in batchIds { try await ledger.retryBatch(migrationId: migrationId, batchId: id) }
        guard let migration = try await ledger.migration(migrationId) else { return 0 }
        try await connection.declare(MigrationBrokerTopology().declarations)
        return try await BatchPublisher(ledger: ledger, connection: connection, logger: logger)
            .publishPending(of: migration)
    }

    /// Discards parked batches: each one's items are recorded as rejected (reason `discarded`) with
    /// the batch's state `discarded`, in one ledger transaction per batch, and its reply goes to the
    /// results queue so that a running aggregator counts it (a later one counts the stored result).
    /// Returns the items rejected.
    public static func discard(
        ledger: Ledger, connection: AMQPConnection, migrationId: String, batchIds: [String], workerId: String
    ) async throws -> Int {
        let batches = try await requireParked(ledger: ledger, migrationId: migrationId, batchIds: batchIds)
        try await connection.declare(MigrationBrokerTopology().declarations)
        var rejected = 0
        for batch in batches {
            let header = JSMMessageHeader(migrationID: migrationId, batchID: batch.batchId)
            let reply: OutboundMessage?
            let request = AMQPProperties(correlationId: batch.batchId, replyTo: MigrationTopology.resultsQueue)
            switch batch.method {
            case LedgerBatch.groupMethod:
                let result = try await discardGroups(ledger, batch, header: header, workerId: workerId)
                rejected += result.results.count
                reply = try RPCEnvelope.reply(
                    to: .migrateGroups, request: request, header: header, body: result, attempt: batch.attempts + 1)
            case LedgerBatch.membershipMethod:
                let result = try await discardMemberships(ledger, batch, header: header, workerId: workerId)
                rejected += result.results.count
                reply = try RPCEnvelope.reply(
                    to: .migrateMemberships, request: request, header: header, body: result,
                    attempt: batch.attempts + 1)
            default:
                let result = try await discardIdentities(ledger, batch, header: header, workerId: workerId)
                rejected += result.results.count
                reply = try RPCEnvelope.reply(
                    to: .migrateIdentities, request: request, header: header, body: result,
                    attempt: batch.attempts + 1)
            }
            if let reply { try await connection.publish(reply) }
        }
        return rejected
    }

    static let discardDetail = "discarded by an operator (jsm-migrate failed discard) after the batch was parked"

    private static func discardIdentities(
        _ ledger: Ledger, _ batch: LedgerBatch, header: JSMMessageHeader, workerId: String
    ) async throws -> JSMBatchResult {
        let content = try await ledger.loadIdentityBatch(migrationId: batch.migrationId, batchId: batch.batchId)
        var result = JSMBatchResult(header: header, attempt: UInt32(clamping: batch.attempts + 1), workerId: workerId)
        var mappings: [IdentityMapping] = []
        var rows: [JSMIdentityResult] = []
        for identity in content.identities {
            var row = JSMIdentityResult()
            row.userKey = identity.userKey
            row.outcome = .rejected
            row.rejectionReason = .discarded
            row.detail = discardDetail
            if !identity.isActive { row.flags.append(.disabled) }
            rows.append(row)
            result.totals.count(.rejected)
            switch identity.kind {
            case .customer: result.customers.count(.rejected)
            case .licensedUser: result.licensedUsers.count(.rejected)
            case .deleted, .inactiveDirectory: result.formers.count(.rejected)
            }
            mappings.append(
                IdentityMapping(
                    userKey: identity.userKey, outcome: .rejected, flags: identity.isActive ? [] : .disabled,
                    reason: "discarded"))
        }
        result.results = rows
        let completion = try await ledger.completeBatch(
            migrationId: batch.migrationId, batchId: batch.batchId, mappings: mappings,
            result: try result.serializedBytes(), as: .discarded)
        return try result.settled(by: completion)
    }

    private static func discardGroups(
        _ ledger: Ledger, _ batch: LedgerBatch, header: JSMMessageHeader, workerId: String
    ) async throws -> JSMGroupBatchResult {
        let content = try await ledger.loadGroupBatch(migrationId: batch.migrationId, batchId: batch.batchId)
        let completions = content.groups.map {
            GroupCompletion(
                lowerName: $0.lowerName, outcome: .rejected, cloudGroupId: nil, escalationRisk: false,
                detail: discardDetail)
        }
        let result = JSMGroupBatchResult(
            header: header, attempt: UInt32(clamping: batch.attempts + 1), workerId: workerId, groups: completions)
        let completion = try await ledger.completeGroupBatch(
            migrationId: batch.migrationId, batchId: batch.batchId, groups: completions,
            result: try result.serializedBytes(), as: .discarded)
        return try result.settled(by: completion)
    }

    private static func discardMemberships(
        _ ledger: Ledger, _ batch: LedgerBatch, header: JSMMessageHeader, workerId: String
    ) async throws -> JSMMembershipBatchResult {
        let content = try await ledger.loadMembershipBatch(migrationId: batch.migrationId, batchId: batch.batchId)
        let completions = content.memberships.map {
            MembershipCompletion(
                membership: $0, outcome: .rejected, cloudGroupId: nil, cloudAccountId: nil, detail: discardDetail)
        }
        let result = JSMMembershipBatchResult(
            header: header, attempt: UInt32(clamping: batch.attempts + 1), workerId: workerId,
            memberships: completions)
        let completion = try await ledger.completeMembershipBatch(
            migrationId: batch.migrationId, batchId: batch.batchId, memberships: completions,
            result: try result.serializedBytes(), as: .discarded)
        return try result.settled(by: completion)
    }
}
