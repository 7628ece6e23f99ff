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

/// Publishes a migration's identity batches from the ledger with publisher confirms, and records
/// each confirmed one as published. Whoever publishes (the producer, or the aggregator that won the
/// phase change) and however often it crashes, the next pass sends only what was not confirmed.
struct BatchPublisher: Sendable {
    let ledger: Ledger
    let connection: AMQPConnection
    let logger: Logger
    /// Batches per confirmed publish round.
    var chunk = 50

    /// Publishes every unpublished pending batch; returns how many it published.
    @discardableResult
    func publishPending(of migration: MigrationRecord) async throws -> Int {
        let batchCount = migration.batchCount ?? 0
        let options = JSMMigrationOptions(migration)
        var published = 0
        // Bounded: each round confirms up to `chunk` batches or ends the loop.
        for _ in 0...(batchCount / max(1, chunk) + 1) {
            let batches = try await ledger.unpublishedBatches(migrationId: migration.id, limit: chunk)
            if batches.isEmpty { break }
            var messages: [OutboundMessage] = []
            for batch in batches {
                let content = try await ledger.loadIdentityBatch(migrationId: migration.id, batchId: batch.batchId)
                var message = JSMIdentityBatch()
                message.header = JSMMessageHeader(migrationID: migration.id, batchID: batch.batchId)
                message.options = options
                message.targetSiteID = migration.siteId
                message.batchSequence = UInt32(clamping: batch.sequence)
                message.batchCount = UInt32(clamping: batchCount)
                message.identities = content.identities.map(JSMIdentity.init)
                messages.append(try RPCEnvelope.request(.migrateIdentities, header: message.header, body: message))
            }
            try await connection.publish(messages)
            try await ledger.markPublished(migrationId: migration.id, batchIds: batches.map(\.batchId))
            published += batches.count
        }
        if published > 0 {
            logger.info(
                "identity batches published", metadata: ["migration": "\(migration.id)", "batches": "\(published)"])
        }
        return published
    }
}
