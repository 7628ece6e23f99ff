import JSMDomain

/// The RPC method names of group and membership batches in `ledger_batches.method`.
extension LedgerBatch {
    /// `MigrateGroups`: one batch of groups to create or reuse.
    public static let groupMethod = "MigrateGroups"
    /// `MigrateMemberships`: one batch of (group, member) pairs to add.
    public static let membershipMethod = "MigrateMemberships"
    /// Every method, in the order a migration runs them.
    public static let allMethods = [identityMethod, groupMethod, membershipMethod]
}

/// A server group the producer found among the groups of the source's users.
public struct GroupCandidate: Sendable, Hashable {
    /// `cwd_group.lower_group_name`: the key groups are matched and recorded on.
    public let lowerName: String
    /// `cwd_group.group_name`: the name the cloud group gets.
    public let name: String
    /// The directory the group was resolved in.
    public let directoryId: Int64

    /// Describes a group.
    public init(lowerName: String, name: String, directoryId: Int64) {
        self.lowerName = lowerName
        self.name = name
        self.directoryId = directoryId
    }
}

/// One user's membership of one group (directly or through nested groups), as found in the source.
public struct MembershipCandidate: Sendable, Hashable {
    /// The group's lower-cased name.
    public let lowerName: String
    /// The member's `app_user.user_key`.
    public let userKey: String

    /// Describes a membership.
    public init(lowerName: String, userKey: String) {
        self.lowerName = lowerName
        self.userKey = userKey
    }
}

/// A group batch with the groups a worker needs.
public struct GroupBatchContent: Sendable, Hashable {
    /// The batch.
    public let batch: LedgerBatch
    /// Its groups, by lower-cased name.
    public let groups: [GroupCandidate]
}

/// A membership batch with the pairs a worker needs.
public struct MembershipBatchContent: Sendable, Hashable {
    /// The batch.
    public let batch: LedgerBatch
    /// Its memberships, by group then user key.
    public let memberships: [MembershipCandidate]
}

/// What became of one group, as the ledger records it.
public enum GroupOutcomeKind: String, Sendable, Hashable, CaseIterable {
    /// A new cloud group.
    case created
    /// A cloud group of that name existed and is reused (a permission-escalation risk).
    case reused
    /// An earlier migration created or reused it on this site.
    case alreadyMigrated = "already_migrated"
    /// The site refused it.
    case rejected
}

/// One group's result, as a worker hands it to the ledger.
public struct GroupCompletion: Sendable, Hashable {
    /// The group's lower-cased name.
    public let lowerName: String
    /// What became of it.
    public let outcome: GroupOutcomeKind
    /// The cloud group (`nil` when rejected).
    public let cloudGroupId: String?
    /// Members may gain permissions they lacked on the server (every reused group).
    public let escalationRisk: Bool
    /// Why it was rejected, or what the risk is.
    public let detail: String?

    /// Describes a group's end.
    public init(
        lowerName: String, outcome: GroupOutcomeKind, cloudGroupId: String?, escalationRisk: Bool, detail: String?
    ) {
        self.lowerName = lowerName
        self.outcome = outcome
        self.cloudGroupId = cloudGroupId
        self.escalationRisk = escalationRisk
        self.detail = detail
    }
}

/// What became of one membership, as the ledger records it.
public enum MembershipOutcomeKind: String, Sendable, Hashable, CaseIterable {
    /// Added to the cloud group.
    case added
    /// The cloud group already had the member.
    case alreadyMember = "already_member"
    /// An earlier migration recorded it on this site.
    case alreadyMigrated = "already_migrated"
    /// The member has no cloud account (former, rejected or not migrated).
    case skippedNoAccount = "skipped_no_account"
    /// The member maps to a customer account, which groups cannot hold.
    case skippedCustomerAccount = "skipped_customer_account"
    /// The group was not migrated (rejected).
    case skippedNoGroup = "skipped_no_group"
    /// The site refused it.
    case rejected

    /// Any of the three expected skips.
    public var isSkip: Bool { self == .skippedNoAccount || self == .skippedCustomerAccount || self == .skippedNoGroup }
}

/// One membership's result, as a worker hands it to the ledger.
public struct MembershipCompletion: Sendable, Hashable {
    /// The pair.
    public let membership: MembershipCandidate
    /// What became of it.
    public let outcome: MembershipOutcomeKind
    /// The cloud group and account it was added with (for `added` and `already_member`).
    public let cloudGroupId: String?
    /// The member's cloud account (for `added` and `already_member`).
    public let cloudAccountId: String?
    /// Why it was skipped or rejected.
    public let detail: String?

    /// Describes a membership's end.
    public init(
        membership: MembershipCandidate, outcome: MembershipOutcomeKind, cloudGroupId: String?,
        cloudAccountId: String?, detail: String?
    ) {
        self.membership = membership
        self.outcome = outcome
        self.cloudGroupId = cloudGroupId
        self.cloudAccountId = cloudAccountId
        self.detail = detail
    }
}

/// What a membership batch's worker needs from earlier phases: the cloud groups and accounts it
/// maps to, and the pairs an earlier migration already added on this site.
public struct MembershipTargets: Sendable, Hashable {
    /// Cloud group ids of the migrated (created or reused) groups, by lower-cased name.
    public let groups: [String: String]
    /// Accounts of the identities created or linked on the site, by user key.
    public let accounts: [String: PriorMapping]
    /// Pairs an earlier migration recorded as added or already a member on this site.
    public let alreadyMigrated: Set<MembershipCandidate>
}

/// Groups counted by outcome.
public struct GroupTally: Sendable, Hashable, Encodable {
    /// Groups in scope (with a batch).
    public var inScope = 0
    /// `created`
    public var created = 0
    /// `reused`
    public var reused = 0
    /// `already_migrated`
    public var alreadyMigrated = 0
    /// `rejected`
    public var rejected = 0
    /// Flagged with a permission-escalation risk.
    public var escalationRisks = 0

    /// Creates an empty tally.
    public init() {}

    /// Every decided group.
    public var accountedFor: Int { created + reused + alreadyMigrated + rejected }
    /// `in scope = created + reused + already_migrated + rejected`.
    public var balances: Bool { inScope == accountedFor }
}

/// Memberships counted by outcome.
public struct MembershipTally: Sendable, Hashable, Encodable {
    /// Memberships in scope.
    public var inScope = 0
    /// `added`
    public var added = 0
    /// `already_member`
    public var alreadyMember = 0
    /// `already_migrated`
    public var alreadyMigrated = 0
    /// Any `skipped_*` outcome: expected, reported, not an error.
    public var skipped = 0
    /// `rejected`
    public var rejected = 0

    /// Creates an empty tally.
    public init() {}

    /// Every decided membership.
    public var accountedFor: Int { added + alreadyMember + alreadyMigrated + skipped + rejected }
    /// `in scope = added + already_member + already_migrated + skipped + rejected`.
    public var balances: Bool { inScope == accountedFor }
}

/// A migration's group and membership totals from the ledger.
public struct GroupPhaseTotals: Sendable, Hashable {
    /// Groups.
    public var groups = GroupTally()
    /// Memberships.
    public var memberships = MembershipTally()

    /// Creates empty totals.
    public init() {}

    /// Both invariants.
    public var invariantHolds: Bool { groups.balances && memberships.balances }
}

/// A group or membership for the requires-attention report.
public struct GroupAttentionRecord: Sendable, Hashable {
    /// Which of the two it is.
    public enum Kind: String, Sendable, Hashable {
        /// A group (reused or rejected).
        case group
        /// A membership (rejected).
        case membership
    }

    /// The group's name, or `group/user_key` for a membership.
    public let key: String
    /// Group or membership.
    public let kind: Kind
    /// `reused` or `rejected`.
    public let outcome: String
    /// The cloud group, when there is one.
    public let cloudGroupId: String?
    /// What the risk or the refusal is.
    public let detail: String
    /// The batch that decided it.
    public let batchId: String
    /// For a reused group, the members this migration added to it.
    public let membersAdded: Int
}

/// An in-scope group and how it ended (`nil` while undecided).
public struct GroupScopeRecord: Sendable, Hashable {
    /// The group's lower-cased name.
    public let lowerName: String
    /// Its outcome, once decided.
    public let outcome: GroupOutcomeKind?
    /// The cloud group, once created, reused or found.
    public let cloudGroupId: String?
}

/// An in-scope membership and how it ended (`nil` while undecided).
public struct MembershipScopeRecord: Sendable, Hashable {
    /// The pair.
    public let membership: MembershipCandidate
    /// Its outcome, once decided.
    public let outcome: MembershipOutcomeKind?
}

/// How a completion ends its batch.
public enum BatchEnding: Sendable, Hashable {
    /// A worker did the work (from pending or parked).
    case done
    /// An operator discarded the parked batch; its items are recorded as rejected.
    case discarded

    /// The batch state it leaves.
    var state: BatchState { self == .done ? .done : .discarded }
}
