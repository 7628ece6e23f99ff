/// The two kinds of account a cloud site holds; the site keeps at most one of each per email.
public enum CloudAccountType: String, Sendable, Hashable, CaseIterable {
    /// A full Atlassian account, needed by anyone with application access.
    case atlassian
    /// A portal-only customer account of this site.
    case customer
}

/// An account the site already has for an identity's email, as its search returned it.
///
/// The rules link to such an account instead of creating a second one.
public struct ExistingCloudAccount: Sendable, Hashable {
    /// The site's account id, which the mapping stores.
    public let accountId: String
    /// Whether it is an Atlassian or a customer account.
    public let type: CloudAccountType

    /// Creates a reference to an account on the site.
    public init(accountId: String, type: CloudAccountType) {
        self.accountId = accountId
        self.type = type
    }
}

/// A mapping an earlier migration to this same site already made for an identity (for instance
/// when users were migrated in advance).
///
/// Its presence means no cloud call: the identity is `already_migrated`, which is what makes
/// migrating in advance save downtime.
public struct PriorMapping: Sendable, Hashable {
    /// The account the identity was created as or linked to.
    public let accountId: String
    /// That account's type.
    public let accountType: CloudAccountType

    /// Records an earlier mapping.
    public init(accountId: String, accountType: CloudAccountType) {
        self.accountId = accountId
        self.accountType = accountType
    }

    /// The mapped account, for identities that merge into this one.
    public var account: ExistingCloudAccount {
        ExistingCloudAccount(accountId: accountId, type: accountType)
    }
}
