import JSMDomain
import ServiceLifecycle

/// Where the local site keeps its accounts, groups and memberships: SQLite or PostgreSQL.
///
/// The store is a `Service` because it owns connections that must be opened before the first
/// request and closed after the last. Both stores hold the rule "one account per (normalised email,
/// account type)" as a unique constraint in the database itself, so concurrent creators converge
/// whatever the application does.
public protocol AccountStore: Service {
    /// Creates the tables and constraints if they are missing; safe to call on every start.
    func prepare() async throws

    /// Inserts a batch of accounts in one statement (`INSERT ... ON CONFLICT DO NOTHING RETURNING`),
    /// then reads the rows that already existed; one result per input, in input order.
    ///
    /// A customer account is not inserted when its email has an Atlassian account: its result is
    /// then `.existing` with that Atlassian account, the one to link to.
    func insertAccounts(_ accounts: [NewSiteAccount]) async throws -> [AccountCreation]

    /// Gives the Atlassian account with this id access to `products` as well as those it has;
    /// the account as it now is, or `nil` when no Atlassian account has this id.
    ///
    /// `POST /rest/api/3/user` does this when the email's Atlassian account exists and the request
    /// names products. Concurrent grants to one account all land (compare-and-set, retried).
    func grantProducts(_ products: [String], toAccountId accountId: String) async throws -> SiteAccount?

    /// The accounts with this normalised email, Atlassian first.
    func accounts(withEmail email: String) async throws -> [SiteAccount]

    /// The account with this id, if any.
    func account(withId accountId: String) async throws -> SiteAccount?

    /// Creates a group unless one with the same name (case-insensitive) exists.
    func createGroup(named name: String) async throws -> GroupCreation

    /// The group with this id, if any.
    func group(withId groupId: String) async throws -> SiteGroup?

    /// The group with this name (case-insensitive), if any.
    func group(named name: String) async throws -> SiteGroup?

    /// Removes the group with this id and all its memberships, in one transaction; `false` when no
    /// group has this id. Its name is free again: a group created with it later gets a new id.
    func deleteGroup(withId groupId: String) async throws -> Bool

    /// Adds an existing account to an existing group.
    func addMember(accountId: String, groupId: String) async throws -> MembershipResult

    /// Up to `limit` members of the group from position `startAt`, in account creation order,
    /// with the group's member count; `nil` when no group has this id. Read-only.
    func members(ofGroupId groupId: String, startAt: Int, limit: Int) async throws -> SiteMemberPage?

    /// The verification figures.
    func counts() async throws -> SiteCounts

    /// Up to `limit` accounts created after position `sequence`, in creation order.
    func accounts(after sequence: Int64, limit: Int) async throws -> [SiteAccount]
}

/// One page of a group's members, as `GET /rest/api/3/group/member` serves it.
public struct SiteMemberPage: Sendable, Hashable {
    /// The members on this page.
    public let accounts: [SiteAccount]
    /// How many members the group has in all, which callers use to bound their paging.
    public let total: Int

    /// Describes a page.
    public init(accounts: [SiteAccount], total: Int) {
        self.accounts = accounts
        self.total = total
    }
}

/// A store failure the HTTP layer reports as 500, with a message safe to show.
public struct AccountStoreError: Error, Sendable, CustomStringConvertible {
    /// What failed.
    public let message: String

    /// Describes a failure.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}

extension CloudAccountType {
    /// Reads the type column, failing loudly on a value the schema's CHECK should have refused.
    static func fromColumn(_ value: String?) throws -> CloudAccountType {
        guard let value, let type = CloudAccountType(rawValue: value) else {
            throw AccountStoreError("unknown account type in the store: \(value ?? "NULL")")
        }
        return type
    }
}

/// How many times a product grant re-reads and retries after a concurrent grant changed the account.
let productGrantAttempts = 8

extension AccountCreation {
    /// Pairs each requested account with its outcome: `created` when its id came back from the
    /// insert, else `existing` with the account that stood in its way (for a customer, the email's
    /// Atlassian account wins over its customer account).
    static func results(
        for accounts: [NewSiteAccount],
        created sequences: [String: Int64],
        existing: [String: [SiteAccount]]
    ) throws -> [AccountCreation] {
        try accounts.map { account in
            if let seq = sequences[account.accountId] {
                return .created(
                    SiteAccount(
                        sequence: seq, accountId: account.accountId, type: account.type,
                        email: account.email.value, displayName: account.displayName, products: account.products))
            }
            let found = existing[account.email.value] ?? []
            let atlassian = found.first { $0.type == .atlassian }
            let sameType = found.first { $0.type == account.type }
            let blocking = account.type == .customer ? (atlassian ?? sameType) : sameType
            guard let blocking else {
                throw AccountStoreError("an account was not inserted but nothing with its email can be read back")
            }
            return .existing(blocking)
        }
    }
}
