import JSMDomain

/// The narrow port through which workers change a cloud site: find the accounts an email already
/// has, create customer and Atlassian accounts, create groups and add members.
///
/// Workers depend on this protocol, not on HTTP: the production adapter talks to Atlassian Cloud,
/// and the same adapter talks to the project's local site in tests, demos and benchmarks.
/// Every creation is idempotent from the worker's point of view: when the account already exists,
/// the answer is `linked` to it, so a redelivered message never makes a second account.
public protocol CloudSite: Sendable {
    /// The Atlassian and customer accounts the site holds for an email, Atlassian accounts first.
    func accounts(withEmail email: NormalizedEmail) async throws -> [ExistingCloudAccount]

    /// Creates a portal-only customer account without notification, or links to the account the
    /// email already has: an Atlassian account wins over a customer account.
    func createCustomer(email: NormalizedEmail, displayName: String) async throws -> AccountProvisioning

    /// Creates an Atlassian account without product access or invitation, or links to the Atlassian
    /// account the email already has. A customer account with the same email does not count: the
    /// rules then want a second account.
    func createAtlassianAccount(email: NormalizedEmail, displayName: String) async throws -> AccountProvisioning

    /// Like ``createAtlassianAccount(email:displayName:)``, for a caller that searched the email
    /// just before and passes what it found, so the adapter need not search again.
    func createAtlassianAccount(
        email: NormalizedEmail, displayName: String, afterSearchFound existing: [ExistingCloudAccount]
    ) async throws -> AccountProvisioning

    /// Creates a group, or reuses the one that already has this name (the caller reports reuse as a
    /// permission-escalation risk).
    func createGroup(named name: String) async throws -> GroupProvisioning

    /// Adds an account to a group; adding an existing member is not an error.
    func addMember(accountId: String, toGroupId groupId: String) async throws -> MembershipChange

    /// The group with this name, compared case-insensitively as the site compares group names;
    /// `nil` when there is none. Read-only: a dry run predicts `reused` from it without creating.
    func group(named name: String) async throws -> CloudGroup?

    /// Which of these group ids the site still has: a group an earlier migration created or reused
    /// may have been deleted since. Read-only.
    func existingGroupIds(_ groupIds: [String]) async throws -> Set<String>

    /// One page of a group's members (inactive accounts included), in the site's order; `nil` when
    /// the site has no group with this id. Read-only: a dry run predicts `already_member` from it.
    func groupMembers(ofGroupId groupId: String, startAt: Int, maxResults: Int) async throws -> GroupMemberPage?
}

extension CloudSite {
    /// Searches again: correct for any site; adapters that can trust the caller's search override it.
    public func createAtlassianAccount(
        email: NormalizedEmail, displayName: String, afterSearchFound existing: [ExistingCloudAccount]
    ) async throws -> AccountProvisioning {
        try await createAtlassianAccount(email: email, displayName: displayName)
    }

    /// Creates the account a decision asks for, by type, so callers need not switch themselves.
    public func provisionAccount(
        ofType type: CloudAccountType,
        email: NormalizedEmail,
        displayName: String
    ) async throws -> AccountProvisioning {
        switch type {
        case .customer: return try await createCustomer(email: email, displayName: displayName)
        case .atlassian: return try await createAtlassianAccount(email: email, displayName: displayName)
        }
    }
}

/// How an account request ended: a new account, or a link to one that already existed.
///
/// The difference is the `created` / `linked` outcome the ledger records.
public enum AccountProvisioning: Sendable, Hashable {
    /// The site made a new account.
    case created(ExistingCloudAccount)
    /// The site already had an account for the email; the identity maps to it.
    case linked(ExistingCloudAccount)

    /// The account the identity now maps to, whichever way it came about.
    public var account: ExistingCloudAccount {
        switch self {
        case .created(let account), .linked(let account): return account
        }
    }

    /// Whether the site made a new account.
    public var isCreated: Bool {
        if case .created = self { return true }
        return false
    }
}

/// A group on the site, as the port returns it.
public struct CloudGroup: Sendable, Hashable {
    /// The site's stable group id, which membership calls use.
    public let groupId: String
    /// The group's name.
    public let name: String

    /// Describes a group.
    public init(groupId: String, name: String) {
        self.groupId = groupId
        self.name = name
    }
}

/// One page of a group's members, as the site's paged member listing returns it.
public struct GroupMemberPage: Sendable, Hashable {
    /// The members' account ids on this page.
    public let accountIds: [String]
    /// The group's member count, as the site reports it: it bounds how many pages a caller reads.
    public let total: Int
    /// Whether the site says no page follows.
    public let isLast: Bool

    /// The largest page a site serves (Atlassian caps `maxResults` at 50): callers ask for it.
    public static let largestSize = 50

    /// Describes a page.
    public init(accountIds: [String], total: Int, isLast: Bool) {
        self.accountIds = accountIds
        self.total = total
        self.isLast = isLast
    }
}

extension CloudSite {
    /// Every member of the group, read page by page (`nil` when the site has no such group).
    ///
    /// Bounded: it reads at most as many pages as the first page's `total` calls for (one more
    /// when the group grew meanwhile), and stops at the first empty or last page.
    public func memberAccountIds(ofGroupId groupId: String) async throws -> Set<String>? {
        guard
            let first = try await groupMembers(ofGroupId: groupId, startAt: 0, maxResults: GroupMemberPage.largestSize)
        else { return nil }
        var members = Set(first.accountIds)
        var page = first
        var startAt = first.accountIds.count
        let pages = (max(0, first.total) + GroupMemberPage.largestSize - 1) / GroupMemberPage.largestSize + 1
        for _ in 1..<max(1, pages) {
            guard !page.isLast, !page.accountIds.isEmpty else { break }
            guard
                let next = try await groupMembers(
                    ofGroupId: groupId, startAt: startAt, maxResults: GroupMemberPage.largestSize)
            else { return nil }
            members.formUnion(next.accountIds)
            startAt += next.accountIds.count
            page = next
        }
        return members
    }
}

/// How a group request ended: a new group, or reuse of a group with the same name.
public enum GroupProvisioning: Sendable, Hashable {
    /// The site made a new group.
    case created(CloudGroup)
    /// A group with that name already existed and is reused (a permission-escalation risk to report).
    case reused(CloudGroup)

    /// The group either way.
    public var group: CloudGroup {
        switch self {
        case .created(let group), .reused(let group): return group
        }
    }
}

/// How a membership request ended; both are success, so redelivery is harmless.
public enum MembershipChange: Sendable, Hashable {
    /// The account became a member.
    case added
    /// The account already was a member.
    case alreadyMember
}
