import JSMContracts
import JSMLedger
import SwiftProtobuf

/// The reply of a batch method (`BatchResult`, `GroupBatchResult`, `MembershipBatchResult`): the
/// fields every processor sets the same way, so replays and fresh replies are built once.
protocol BatchReply: SwiftProtobuf.Message {
    var header: JSMMessageHeader { get set }
    var attempt: UInt32 { get set }
    var workerID: String { get set }
    var replayed: Bool { get set }
}

/// A batch request (`IdentityBatch`, `GroupBatch`, `MembershipBatch`): what the worker checks on
/// every kind before processing it.
protocol SiteBatch: SwiftProtobuf.Message {
    var header: JSMMessageHeader { get }
    var targetSiteID: String { get }
}

extension JSMIdentityBatch: SiteBatch {}
extension JSMGroupBatch: SiteBatch {}
extension JSMMembershipBatch: SiteBatch {}

extension JSMBatchResult: BatchReply {}
extension JSMGroupBatchResult: BatchReply {}
extension JSMMembershipBatchResult: BatchReply {}

extension BatchReply {
    /// An empty reply to one delivery of a batch.
    init(header: JSMMessageHeader, attempt: UInt32, workerId: String) {
        self.init()
        self.header = header
        self.attempt = attempt
        self.workerID = workerId
    }

    /// A stored result, marked as a replay of this delivery.
    static func replay(_ stored: [UInt8], attempt: UInt32, workerId: String) throws -> Self {
        var reply = try Self(serializedBytes: stored)
        reply.replayed = true
        reply.attempt = attempt
        reply.workerID = workerId
        return reply
    }

    /// The reply once the ledger answered the completion: this one, or the stored one when another
    /// delivery of the batch committed first (its result is the one that counts).
    func settled(by completion: BatchCompletion) throws -> Self {
        completion.replayed ? try Self.replay(completion.result, attempt: attempt, workerId: workerID) : self
    }
}

extension JSMGroupBatchResult {
    /// The reply for groups that ended, in the given order, with the totals.
    init(header: JSMMessageHeader, attempt: UInt32, workerId: String, groups: [GroupCompletion]) {
        self.init(header: header, attempt: attempt, workerId: workerId)
        var rows: [JSMGroupResult] = []
        rows.reserveCapacity(groups.count)
        for group in groups {
            var row = JSMGroupResult()
            row.lowerName = group.lowerName
            row.cloudGroupID = group.cloudGroupId ?? ""
            row.permissionEscalationRisk = group.escalationRisk
            row.detail = group.detail ?? ""
            switch group.outcome {
            case .created:
                row.outcome = .created
                totals.created += 1
            case .reused:
                row.outcome = .reused
                totals.reused += 1
            case .alreadyMigrated:
                row.outcome = .alreadyMigrated
                totals.alreadyMigrated += 1
            case .rejected:
                row.outcome = .rejected
                totals.rejected += 1
            }
            if group.escalationRisk { totals.permissionEscalationRisks += 1 }
            rows.append(row)
        }
        // Assigned once: appending to a generated repeated field copies it each time.
        results = rows
    }
}

extension JSMMembershipBatchResult {
    /// The reply for memberships that ended, in the given order, with the totals.
    init(header: JSMMessageHeader, attempt: UInt32, workerId: String, memberships: [MembershipCompletion]) {
        self.init(header: header, attempt: attempt, workerId: workerId)
        var rows: [JSMMembershipResult] = []
        rows.reserveCapacity(memberships.count)
        for membership in memberships {
            var row = JSMMembershipResult()
            row.groupLowerName = membership.membership.lowerName
            row.memberUserKey = membership.membership.userKey
            row.detail = membership.detail ?? ""
            switch membership.outcome {
            case .added:
                row.outcome = .added
                totals.added += 1
            case .alreadyMember:
                row.outcome = .alreadyMember
                totals.alreadyMember += 1
            case .alreadyMigrated:
                row.outcome = .alreadyMigrated
                totals.alreadyMigrated += 1
            case .skippedNoAccount:
                row.outcome = .skippedNoAccount
                totals.skipped += 1
            case .skippedCustomerAccount:
                row.outcome = .skippedCustomerAccount
                totals.skipped += 1
            case .skippedNoGroup:
                row.outcome = .skippedNoGroup
                totals.skipped += 1
            case .rejected:
                row.outcome = .rejected
                totals.rejected += 1
            }
            rows.append(row)
        }
        results = rows
    }
}
