import Foundation
import JSMDomain

/// An account as the local site stores it.
public struct SiteAccount: Sendable, Hashable {
    /// The position in creation order, which the verification listing pages by.
    public let sequence: Int64
    /// The id the site handed out.
    public let accountId: String
    /// Atlassian or customer account.
    public let type: CloudAccountType
    /// The normalised email: the site keeps one account per (email, type).
    public let email: String
    /// The name shown for the account.
    public let displayName: String

    /// Describes a stored account.
    public init(sequence: Int64, accountId: String, type: CloudAccountType, email: String, displayName: String) {
        self.sequence = sequence
        self.accountId = accountId
        self.type = type
        self.email = email
        self.displayName = displayName
    }
}

/// An account to create, with its id chosen up front so a batch insert can tell which rows it made.
public struct NewSiteAccount: Sendable, Hashable {
    /// The id the account gets if it is new.
    public let accountId: String
    /// Atlassian or customer account.
    public let type: CloudAccountType
    /// The normalised email.
    public let email: NormalizedEmail
    /// The name shown for the account.
    public let displayName: String

    /// Prepares an account with a freshly generated id in Atlassian's style for its type.
    public init(type: CloudAccountType, email: NormalizedEmail, displayName: String) {
        self.accountId = AccountIdentifier.make(for: type)
        self.type = type
        self.email = email
        self.displayName = displayName
    }
}

/// How a creation ended at the store: the database's unique constraint decides.
public enum AccountCreation: Sendable, Hashable {
    /// A new row.
    case created(SiteAccount)
    /// The email already had this account: of the same type, or, for a customer, an Atlassian
    /// account (which a customer account is never created beside).
    case existing(SiteAccount)
}

/// A group as the site stores it.
public struct SiteGroup: Sendable, Hashable {
    /// The id the site handed out (a UUID, as Atlassian's group ids are).
    public let groupId: String
    /// The name, as first created; names compare case-insensitively.
    public let name: String

    /// Describes a stored group.
    public init(groupId: String, name: String) {
        self.groupId = groupId
        self.name = name
    }
}

/// How a group creation ended.
public enum GroupCreation: Sendable, Hashable {
    /// A new group.
    case created(SiteGroup)
    /// A group with that name (compared case-insensitively) already existed.
    case existing(SiteGroup)
}

/// How a membership request ended at the store.
public enum MembershipResult: Sendable, Hashable {
    /// The account became a member.
    case added
    /// The account already was a member.
    case alreadyMember
}

/// The site's own verification figures: accounts per type, groups and memberships.
public struct SiteCounts: Sendable, Hashable, Codable {
    /// Atlassian accounts.
    public var atlassianAccounts: Int
    /// Customer accounts.
    public var customerAccounts: Int
    /// Groups.
    public var groups: Int
    /// Group memberships.
    public var groupMemberships: Int

    /// Collects the figures.
    public init(atlassianAccounts: Int, customerAccounts: Int, groups: Int, groupMemberships: Int) {
        self.atlassianAccounts = atlassianAccounts
        self.customerAccounts = customerAccounts
        self.groups = groups
        self.groupMemberships = groupMemberships
    }
}

/// Account ids in the shapes Atlassian uses, so ids from the local site look like real ones in
/// reports and mappings.
public enum AccountIdentifier {
    /// `712020:<uuid>` for an Atlassian account, `qm:<uuid>:<uuid>` for a customer account.
    public static func make(for type: CloudAccountType) -> String {
        switch type {
        case .atlassian: return "712020:" + UUID().uuidString.lowercased()
        case .customer: return "qm:" + UUID().uuidString.lowercased() + ":" + UUID().uuidString.lowercased()
        }
    }
}

extension AccountIdentifier {
    /// A group id: a UUID, as Atlassian's group ids are.
    public static func groupId() -> String { UUID().uuidString.lowercased() }
}
