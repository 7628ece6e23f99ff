import AMQP
import JSMContracts
import JSMDomain
import JSMLedger
import JSMServices
import Logging

extension JSMMigrationOptions {
    /// The options a migration was started with, as every message carries them.
    init(_ migration: MigrationRecord) {
        self.init()
        switch migration.scope.users {
        case .all: users = .all
        case .related: users = .related
        case .none: users = .none
        }
        switch migration.scope.customers {
        case .all: customers = .all
        case .related: customers = .related
        case .none: customers = .none
        }
        includeRequestless = migration.scope.includeRequestless
        groups = migration.groups
        groupMembership = migration.groupMembership
        invalidEmail = migration.policies.invalidEmail == .former ? .former : .block
        duplicateEmail = migration.policies.duplicateEmail == .block ? .block : .merge
        batchSize = UInt32(clamping: migration.batchSize)
    }
}

/// Publishes a migration's batches from the ledger with publisher confirms, and records each
/// confirmed one as published. Whoever publishes (the producer, or the aggregator that won the
/// phase change) and however often it crashes, the next pass sends only what was not confirmed.
/// Identity and group batches go out at once; membership batches only once no identity or group
/// batch is pending, because a membership needs both of its ends migrated.
struct BatchPublisher: Sendable {
    let ledger: Ledger
    let connection: AMQPConnection
    let logger: Logger
    /// Batches per confirmed publish round.
    var chunk = 50

    /// Publishes every unpublished pending batch that may go out now; returns how many it published.
    @discardableResult
    func publishPending(of migration: MigrationRecord) async throws -> Int {
        var published = try await publish(migration, method: .migrateIdentities)
        if migration.groups {
            published += try await publish(migration, method: .migrateGroups)
        }
        published += try await publishMembershipsIfReady(of: migration)
        return published
    }

    /// Publishes the membership batches once no identity or group batch is pending (a membership
    /// needs both ends migrated); returns how many it published.
    @discardableResult
    func publishMembershipsIfReady(of migration: MigrationRecord) async throws -> Int {
        guard migration.groupMembership,
            try await ledger.pendingBatchCount(
                migrationId: migration.id, methods: [LedgerBatch.identityMethod, LedgerBatch.groupMethod]) == 0
        else { return 0 }
        return try await publish(migration, method: .migrateMemberships)
    }

    /// Publishes the unpublished pending batches of one method.
    private func publish(_ migration: MigrationRecord, method: RPCMethod) async throws -> Int {
        let batchCount = try await ledger.batchStateCounts(migrationId: migration.id, method: method.rawValue)
            .values.reduce(0, +)
        let options = JSMMigrationOptions(migration)
        var published = 0
        // Bounded: each round confirms up to `chunk` batches or ends the loop.
        for _ in 0...(batchCount / max(1, chunk) + 1) {
            // Leased, not just read: another publisher running at once skips them.
            let batches = try await ledger.leaseUnpublishedBatches(
                migrationId: migration.id, method: method.rawValue, limit: chunk)
            if batches.isEmpty { break }
            var messages: [OutboundMessage] = []
            for batch in batches {
                let header = JSMMessageHeader(migrationID: migration.id, batchID: batch.batchId)
                let sequence = UInt32(clamping: batch.sequence)
                let count = UInt32(clamping: batchCount)
                switch method {
                case .migrateIdentities:
                    let content = try await ledger.loadIdentityBatch(migrationId: migration.id, batchId: batch.batchId)
                    var message = JSMIdentityBatch()
                    message.header = header
                    message.options = options
                    message.targetSiteID = migration.siteId
                    message.batchSequence = sequence
                    message.batchCount = count
                    message.identities = content.identities.map(JSMIdentity.init)
                    messages.append(try RPCEnvelope.request(method, header: header, body: message))
                case .migrateGroups:
                    let content = try await ledger.loadGroupBatch(migrationId: migration.id, batchId: batch.batchId)
                    var message = JSMGroupBatch()
                    message.header = header
                    message.options = options
                    message.targetSiteID = migration.siteId
                    message.batchSequence = sequence
                    message.batchCount = count
                    message.groups = content.groups.map { group in
                        var row = JSMGroup()
                        row.name = group.name
                        row.lowerName = group.lowerName
                        row.directoryID = group.directoryId
                        return row
                    }
                    messages.append(try RPCEnvelope.request(method, header: header, body: message))
                case .migrateMemberships:
                    let content = try await ledger.loadMembershipBatch(
                        migrationId: migration.id, batchId: batch.batchId)
                    var message = JSMMembershipBatch()
                    message.header = header
                    message.options = options
                    message.targetSiteID = migration.siteId
                    message.batchSequence = sequence
                    message.batchCount = count
                    message.memberships = content.memberships.map { pair in
                        var row = JSMMembership()
                        row.groupLowerName = pair.lowerName
                        row.memberUserKey = pair.userKey
                        return row
                    }
                    messages.append(try RPCEnvelope.request(method, header: header, body: message))
                case .expandProject:
                    throw PipelineError(.invalidState, "project expansions are not batches")
                }
            }
            try await connection.publish(messages)
            try await ledger.markPublished(migrationId: migration.id, batchIds: batches.map(\.batchId))
            published += batches.count
        }
        if published > 0 {
            logger.info(
                "batches published",
                metadata: ["migration": "\(migration.id)", "method": "\(method.rawValue)", "batches": "\(published)"])
        }
        return published
    }
}
