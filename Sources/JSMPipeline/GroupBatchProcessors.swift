import JSMCloud
import JSMContracts
import JSMDomain
import JSMLedger
import JSMServices
import Logging

/// `MigrateGroups` for one batch: answer a completed batch from the ledger; otherwise reuse what
/// an earlier migration recorded on this site, create (or reuse) the rest at the site, and complete
/// the batch in one ledger transaction.
struct GroupBatchProcessor: Sendable {
    let ledger: Ledger
    let site: any CloudSite
    let workerId: String
    /// Groups of one batch created at the site at once.
    let siteConcurrency: Int
    let logger: Logger

    /// What reusing a group means, in every reused group's detail.
    static let reuseRisk =
        "a cloud group with this name already existed: its existing members and permissions now apply "
        + "to the migrated members too (permission-escalation risk)"

    /// The reply for `batch`; `replayed` when the ledger already had it (no site call was made).
    func process(_ batch: JSMGroupBatch, attempt: UInt32) async throws -> JSMGroupBatchResult {
        let migrationId = batch.header.migrationID
        let batchId = batch.header.batchID
        if let stored = try await ledger.completedResult(migrationId: migrationId, batchId: batchId) {
            return try .replay(stored, attempt: attempt, workerId: workerId)
        }
        guard !batch.targetSiteID.isEmpty else {
            throw RPCEnvelope.Unusable(reason: .invalidMessage, detail: "batch \(batchId) names no target site")
        }
        guard batch.groups.allSatisfy({ !$0.lowerName.isEmpty && !$0.name.isEmpty }),
            Set(batch.groups.map(\.lowerName)).count == batch.groups.count
        else {
            throw RPCEnvelope.Unusable(
                reason: .invalidMessage, detail: "batch \(batchId): a group has no name or appears twice")
        }
        let (prior, gone) = try await present(
            try await ledger.priorGroupMappings(siteId: batch.targetSiteID, lowerNames: batch.groups.map(\.lowerName)),
            batchId: batchId)
        let ended = try await batch.groups.boundedConcurrentMap(limit: siteConcurrency) { group in
            if let groupId = prior[group.lowerName] {
                return GroupCompletion(
                    lowerName: group.lowerName, outcome: .alreadyMigrated, cloudGroupId: groupId,
                    escalationRisk: false, detail: nil)
            }
            let provisioned = try await provision(group)
            guard let deletedId = gone[group.lowerName], provisioned.outcome != .rejected else { return provisioned }
            // The operator must grant the new group what the deleted one had: it is listed for attention.
            let replaced = Self.replacement(of: deletedId)
            return GroupCompletion(
                lowerName: provisioned.lowerName, outcome: provisioned.outcome, cloudGroupId: provisioned.cloudGroupId,
                escalationRisk: provisioned.escalationRisk,
                detail: provisioned.detail.map { "\(replaced); \($0)" } ?? replaced)
        }
        // Replies list the groups in the request's order.
        let byName = Dictionary(uniqueKeysWithValues: ended.map { ($0.lowerName, $0) })
        let completions = batch.groups.compactMap { byName[$0.lowerName] }
        let result = JSMGroupBatchResult(
            header: batch.header, attempt: attempt, workerId: workerId, groups: completions)
        let completion = try await ledger.completeGroupBatch(
            migrationId: migrationId, batchId: batchId, groups: completions, result: try result.serializedBytes())
        return try result.settled(by: completion)
    }

    /// The earlier migrations' groups the site still has (one lookup per 50). A group deleted
    /// since is provisioned again, created or reused by name, and its memberships added again: one
    /// counted `already_migrated` would leave its members out of a group that no longer exists.
    private func present(_ prior: [String: String], batchId: String) async throws -> (
        present: [String: String], gone: [String: String]
    ) {
        guard !prior.isEmpty else { return (prior, [:]) }
        let existing = try await site.existingGroupIds(Array(prior.values))
        let gone = prior.filter { !existing.contains($0.value) }
        for (name, groupId) in gone.sorted(by: { $0.key < $1.key }) {
            logger.warning(
                "a cloud group an earlier migration mapped is gone from the site: provisioning it again",
                metadata: ["group": "\(name)", "cloud_group_id": "\(groupId)", "batch": "\(batchId)"])
        }
        return (prior.filter { existing.contains($0.value) }, gone)
    }

    /// The detail of a group provisioned in place of one the site deleted.
    static func replacement(of deletedId: String) -> String {
        "the cloud group \(deletedId) an earlier migration mapped was deleted on the site: this one replaces it "
            + "without the deleted group's permissions"
    }

    /// Creates the group, or reuses the site's group of that name; a refusal is a rejected group.
    private func provision(_ group: JSMGroup) async throws -> GroupCompletion {
        do {
            switch try await site.createGroup(named: group.name) {
            case .created(let created):
                return GroupCompletion(
                    lowerName: group.lowerName, outcome: .created, cloudGroupId: created.groupId,
                    escalationRisk: false, detail: nil)
            case .reused(let existing):
                logger.warning(
                    "reusing an existing cloud group: permission-escalation risk",
                    metadata: ["group": "\(group.name)", "cloud_group_id": "\(existing.groupId)"])
                return GroupCompletion(
                    lowerName: group.lowerName, outcome: .reused, cloudGroupId: existing.groupId,
                    escalationRisk: true, detail: Self.reuseRisk)
            }
        } catch let error as CloudSiteError where error.refusesTheItem {
            logger.warning(
                "site refused a group",
                metadata: ["group": "\(group.name)", "detail": "\(error.refusalDetail)"])
            return GroupCompletion(
                lowerName: group.lowerName, outcome: .rejected, cloudGroupId: nil, escalationRisk: false,
                detail: error.refusalDetail)
        }
    }
}

/// `MigrateMemberships` for one batch: answer a completed batch from the ledger; otherwise map each
/// pair to its cloud group and account (from the ledger the earlier phases filled), add what can be
/// added at the site, and complete the batch in one ledger transaction.
struct MembershipBatchProcessor: Sendable {
    let ledger: Ledger
    let site: any CloudSite
    let workerId: String
    /// Memberships of one batch added at the site at once.
    let siteConcurrency: Int
    let logger: Logger

    /// The reply for `batch`; `replayed` when the ledger already had it (no site call was made).
    func process(_ batch: JSMMembershipBatch, attempt: UInt32) async throws -> JSMMembershipBatchResult {
        let migrationId = batch.header.migrationID
        let batchId = batch.header.batchID
        if let stored = try await ledger.completedResult(migrationId: migrationId, batchId: batchId) {
            return try .replay(stored, attempt: attempt, workerId: workerId)
        }
        guard !batch.targetSiteID.isEmpty else {
            throw RPCEnvelope.Unusable(reason: .invalidMessage, detail: "batch \(batchId) names no target site")
        }
        let pairs = batch.memberships.map {
            MembershipCandidate(lowerName: $0.groupLowerName, userKey: $0.memberUserKey)
        }
        guard pairs.allSatisfy({ !$0.lowerName.isEmpty && !$0.userKey.isEmpty }), Set(pairs).count == pairs.count
        else {
            throw RPCEnvelope.Unusable(
                reason: .invalidMessage,
                detail: "batch \(batchId): a membership has no group or member, or appears twice")
        }
        let targets = try await ledger.membershipTargets(siteId: batch.targetSiteID, memberships: pairs)
        let ended = try await pairs.boundedConcurrentMap(limit: siteConcurrency) { pair in
            try await settle(pair, targets: targets)
        }
        // Replies list the memberships in the request's order.
        let byPair = Dictionary(uniqueKeysWithValues: ended.map { ($0.membership, $0) })
        let completions = pairs.compactMap { byPair[$0] }
        let result = JSMMembershipBatchResult(
            header: batch.header, attempt: attempt, workerId: workerId, memberships: completions)
        let completion = try await ledger.completeMembershipBatch(
            migrationId: migrationId, batchId: batchId, memberships: completions,
            result: try result.serializedBytes())
        return try result.settled(by: completion)
    }

    /// One pair's end: recorded before, skipped for want of a group or an Atlassian account, or
    /// added at the site (a refusal is a rejected membership).
    private func settle(_ pair: MembershipCandidate, targets: MembershipTargets) async throws -> MembershipCompletion {
        func ended(_ outcome: MembershipOutcomeKind, _ detail: String?, group: String? = nil, account: String? = nil)
            -> MembershipCompletion
        {
            MembershipCompletion(
                membership: pair, outcome: outcome, cloudGroupId: group, cloudAccountId: account, detail: detail)
        }
        let account = targets.accounts[pair.userKey]
        let step = MembershipRule.step(
            alreadyMigrated: targets.alreadyMigrated.contains(pair), group: targets.groups[pair.lowerName],
            account: account?.accountId, accountType: account?.accountType)
        let groupId: String
        let accountId: String
        switch step {
        case .ended(let outcome, let detail): return ended(outcome, detail)
        case .addAtSite(let group, let member):
            groupId = group
            accountId = member
        }
        do {
            switch try await site.addMember(accountId: accountId, toGroupId: groupId) {
            case .added: return ended(.added, nil, group: groupId, account: accountId)
            case .alreadyMember: return ended(.alreadyMember, nil, group: groupId, account: accountId)
            }
        } catch let error as CloudSiteError where error.refusesTheItem {
            logger.warning(
                "site refused a membership",
                metadata: [
                    "user_key": "\(LogRedaction.identifier(pair.userKey))", "detail": "\(error.refusalDetail)",
                ])
            return ended(.rejected, error.refusalDetail)
        }
    }
}

/// The membership rule up to the site call, shared by the worker (``MembershipBatchProcessor``) and
/// the dry run, so both decide every pair the same way: recorded before, skipped for want of a
/// group or an Atlassian account, or to be added at the site.
///
/// Generic over how a group and an account are named: the worker names them by their cloud ids,
/// the dry run also has groups and accounts that the run has yet to create.
enum MembershipRule {
    /// Where a pair stands before any site call.
    enum Step<Group: Hashable & Sendable, Account: Hashable & Sendable>: Hashable, Sendable {
        /// Decided without the site, with the reason the ledger records.
        case ended(MembershipOutcomeKind, detail: String?)
        /// The site must add the account to the group (`added`, or `already_member` if it was).
        case addAtSite(group: Group, account: Account)
    }

    /// The step for one pair: `already_migrated` when an earlier migration recorded it on this
    /// site; `skipped_no_group` when its group was not migrated (rejected); `skipped_no_account`
    /// when its member has no cloud account (former, rejected or not migrated);
    /// `skipped_customer_account` when the member is a customer account, which groups cannot hold.
    ///
    /// - Parameters:
    ///   - group: the migrated cloud group, `nil` when the group has none.
    ///   - account: the member's cloud account, `nil` when it has none; `accountType` is its type.
    static func step<Group, Account>(
        alreadyMigrated: Bool, group: Group?, account: Account?, accountType: CloudAccountType?
    ) -> Step<Group, Account> {
        if alreadyMigrated { return .ended(.alreadyMigrated, detail: nil) }
        guard let group else { return .ended(.skippedNoGroup, detail: "the group was not migrated to this site") }
        guard let account, let accountType else {
            return .ended(
                .skippedNoAccount, detail: "the member has no cloud account (former, rejected or not migrated)")
        }
        guard accountType == .atlassian else {
            return .ended(
                .skippedCustomerAccount, detail: "the member is a customer account, which groups cannot hold")
        }
        return .addAtSite(group: group, account: account)
    }
}
