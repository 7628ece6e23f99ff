import JSMCloud
import JSMDomain
import JSMLedger

/// The cloud account an in-scope identity will map to once a run has settled it, as the dry run
/// predicts it: what a membership batch will find in the ledger for the member.
public enum PredictedAccount: Sendable, Hashable {
    /// An account the site holds now: linked to, or mapped by an earlier migration.
    case existing(ExistingCloudAccount)
    /// An account the run will create, named by the user key of the identity it is created for;
    /// the identity's merged duplicates link to the same one.
    case new(CloudAccountType, owner: String)

    /// Atlassian or customer: only an Atlassian account can be a group member.
    public var type: CloudAccountType {
        switch self {
        case .existing(let account): return account.type
        case .new(let type, _): return type
        }
    }

    /// The account a settled identity maps to, from its decision: `nil` for a former or rejected
    /// identity, the earlier mapping's account for an already migrated one.
    static func of(_ decided: IdentityDecision, prior: PriorMapping?) -> PredictedAccount? {
        switch decided.decision.action {
        case .link(let account): return .existing(account)
        case .createCustomer: return .new(.customer, owner: decided.identity.userKey)
        case .createAtlassianAccount: return .new(.atlassian, owner: decided.identity.userKey)
        case .mapToFormer: return nil
        case .nothing: return decided.decision.outcome == .alreadyMigrated ? prior.map { .existing($0.account) } : nil
        }
    }
}

/// An in-scope group as a run will settle it, predicted without changing anything.
public enum PredictedGroup: Sendable, Hashable {
    /// An earlier migration created or reused it on this site: no site call.
    case alreadyMigrated(cloudGroupId: String)
    /// The site has a group of that name (any case): the run reuses it, a permission-escalation risk.
    case reused(cloudGroupId: String)
    /// The site has no such group: the run creates it (empty), named by its lower-cased name here.
    case created(lowerName: String)

    /// The outcome the ledger will record.
    public var outcome: GroupOutcomeKind {
        switch self {
        case .alreadyMigrated: return .alreadyMigrated
        case .reused: return .reused
        case .created: return .created
        }
    }

    /// The group's id on the site now; `nil` for a group the run has yet to create.
    public var existingGroupId: String? {
        switch self {
        case .alreadyMigrated(let id), .reused(let id): return id
        case .created: return nil
        }
    }
}

extension GroupTally {
    /// The totals of `groups` as the ledger will count them once the run ends.
    static func predicted(_ groups: some Sequence<PredictedGroup>) -> GroupTally {
        var tally = GroupTally()
        for group in groups {
            tally.inScope += 1
            switch group.outcome {
            case .created: tally.created += 1
            case .reused:
                tally.reused += 1
                tally.escalationRisks += 1
            case .alreadyMigrated: tally.alreadyMigrated += 1
            case .rejected: tally.rejected += 1
            }
        }
        return tally
    }
}

/// The membership totals a run will reach, worked out pair by pair with the worker's own rule
/// (``MembershipRule``) and, for pairs the site must add, from who is a member now.
///
/// The site answers an addition `already_member` when the account was a member before the run, or
/// when an earlier pair of the same run added it (two merged identities share one account); a
/// group that no longer exists on the site refuses the addition (`rejected`). Site refusals of any
/// other kind cannot be known without asking the site to change, so none is predicted.
struct MembershipForecast: Sendable {
    /// What an addition at the site is made of.
    struct Addition: Sendable, Hashable {
        /// The group, as it will be.
        let group: PredictedGroup
        /// The member's account, as it will be.
        let account: PredictedAccount
    }

    /// The in-scope groups, by lower-cased name (a group with no entry is not migrated).
    let groups: [String: PredictedGroup]
    /// The in-scope identities' accounts, by user key (an identity with no entry gets no account).
    let accounts: [String: PredictedAccount]
    /// The pairs decided so far without the site.
    private(set) var settled = MembershipTally()
    /// The additions the site will be asked for, each with how many pairs ask for it.
    private(set) var additions: [Addition: Int] = [:]

    /// A forecast over the predicted groups and accounts.
    init(groups: [String: PredictedGroup], accounts: [String: PredictedAccount]) {
        self.groups = groups
        self.accounts = accounts
    }

    /// Counts one in-scope pair; `alreadyMigrated` when an earlier migration recorded it on this site.
    mutating func add(_ pair: MembershipCandidate, alreadyMigrated: Bool) {
        settled.inScope += 1
        let account = accounts[pair.userKey]
        switch MembershipRule.step(
            alreadyMigrated: alreadyMigrated, group: groups[pair.lowerName], account: account,
            accountType: account?.type)
        {
        case .ended(let outcome, _):
            switch outcome {
            case .added: settled.added += 1
            case .alreadyMember: settled.alreadyMember += 1
            case .alreadyMigrated: settled.alreadyMigrated += 1
            case .skippedNoAccount, .skippedCustomerAccount, .skippedNoGroup: settled.skipped += 1
            case .rejected: settled.rejected += 1
            }
        case .addAtSite(let group, let member):
            additions[Addition(group: group, account: member), default: 0] += 1
        }
    }

    /// The cloud groups whose members decide some addition: every existing group the run adds to.
    var groupsToRead: Set<String> {
        Set(additions.keys.compactMap(\.group.existingGroupId))
    }

    /// The totals, given each group of ``groupsToRead`` with its member account ids (`nil` when the
    /// site has no such group any more). A group left out is taken as present and empty.
    func totals(members: [String: Set<String>?]) -> MembershipTally {
        var tally = settled
        for (addition, count) in additions {
            if let groupId = addition.group.existingGroupId, let onSite = members[groupId] {
                guard let onSite else {
                    tally.rejected += count
                    continue
                }
                if case .existing(let account) = addition.account, onSite.contains(account.accountId) {
                    tally.alreadyMember += count
                    continue
                }
            }
            // The first pair adds the account; any other pair naming the same account finds it there.
            tally.added += 1
            tally.alreadyMember += count - 1
        }
        return tally
    }
}

/// The group and membership part of `start --dry-run --groups [--group-membership]`: read-only
/// ledger queries and site lookups (`existingGroupIds`, `group(named:)`, paged group members), `siteConcurrency` at a
/// time; nothing is created, recorded or published.
struct GroupDryRun: Sendable {
    let ledger: Ledger
    let site: any CloudSite
    let siteId: String
    let siteConcurrency: Int

    /// Pairs (and group names) per ledger lookup: bounded statements, bounded memory per step.
    static let chunkSize = 5_000

    /// The totals a real run will report for the scope's groups and, with `memberships`, their
    /// memberships, given the accounts the identity phase will leave (by user key).
    func predict(
        scope: SourceScope, accounts: [String: PredictedAccount], memberships: Bool
    ) async throws -> GroupPhaseTotals {
        let names = scope.groups.keys.sorted()
        var prior: [String: String] = [:]
        for chunk in names.chunked(Self.chunkSize) {
            prior.merge(try await ledger.priorGroupMappings(siteId: siteId, lowerNames: Array(chunk))) { first, _ in
                first
            }
        }
        // As the worker does: an earlier migration's group the site has deleted since is provisioned
        // again, and its members are added again.
        let present = try await site.existingGroupIds(Array(prior.values))
        let gone = Set(prior.filter { !present.contains($0.value) }.keys)
        prior = prior.filter { present.contains($0.value) }
        var groups: [String: PredictedGroup] = [:]
        for (name, groupId) in prior { groups[name] = .alreadyMigrated(cloudGroupId: groupId) }
        // The worker creates the rest, and the site answers "reused" exactly when it already has a
        // group of that name: the same lookup the adapter makes after the site refuses a duplicate.
        let site = self.site
        let unsettled = names.filter { prior[$0] == nil }.compactMap { scope.groups[$0] }
        let found = try await unsettled.boundedConcurrentMap(limit: siteConcurrency) { candidate in
            (candidate.lowerName, try await site.group(named: candidate.name))
        }
        for (name, existing) in found {
            groups[name] = existing.map { .reused(cloudGroupId: $0.groupId) } ?? .created(lowerName: name)
        }
        var totals = GroupPhaseTotals()
        totals.groups = GroupTally.predicted(groups.values)
        guard memberships else { return totals }

        var forecast = MembershipForecast(groups: groups, accounts: accounts)
        let pairs = scope.memberships.sorted { ($0.lowerName, $0.userKey) < ($1.lowerName, $1.userKey) }
        for chunk in pairs.chunked(Self.chunkSize) {
            let recorded = try await ledger.recordedMemberships(siteId: siteId, memberships: Array(chunk))
            for pair in chunk {
                forecast.add(pair, alreadyMigrated: recorded.contains(pair) && !gone.contains(pair.lowerName))
            }
        }
        let read = try await forecast.groupsToRead.sorted().boundedConcurrentMap(limit: siteConcurrency) { groupId in
            (groupId, try await site.memberAccountIds(ofGroupId: groupId))
        }
        totals.memberships = forecast.totals(members: Dictionary(read, uniquingKeysWith: { first, _ in first }))
        return totals
    }
}
