/// What a server identity is, which decides the path it takes to the cloud.
///
/// Licensed users become Atlassian accounts and customers become customer accounts; identities the
/// server no longer has, or has only in directories it no longer uses, get no account at all but
/// still need a mapping because migrated data references them.
public enum IdentityKind: String, Sendable, Hashable, CaseIterable {
    /// A portal-only user: in an active directory, with no application access.
    case customer
    /// A user with application access (agents, project admins, administrators, regular users).
    case licensedUser = "licensed_user"
    /// A user key that data references but that has no `app_user` or `cwd_user` row.
    case deleted
    /// A user that exists only in inactive directories (or in directories the source does not list).
    case inactiveDirectory = "inactive_directory"

    /// Whether this kind gets a cloud account of its own; the others map to the Former container.
    public var needsCloudAccount: Bool {
        switch self {
        case .customer, .licensedUser: return true
        case .deleted, .inactiveDirectory: return false
        }
    }
}

/// One server identity, as the rules see it: classified, with its email normalised once.
///
/// It is keyed by `userKey` because that is how the server's data (issues, participants,
/// organizations) names a user, and the mapping the migration produces is `userKey -> accountId`.
public struct ServerIdentity: Sendable, Hashable {
    /// The server's stable user key (`app_user.user_key`).
    public let userKey: String
    /// The user name in the resolved directory; the lower-cased `app_user` name, or empty, when deleted.
    public let userName: String
    /// The display name the cloud account is created with.
    public let displayName: String
    /// The address exactly as the source holds it, `nil` for NULL; kept for reports.
    public let rawEmail: String?
    /// The resolved directory (`cwd_directory.id`); `nil` for a deleted identity.
    public let directoryId: Int64?
    /// The resolved directory's `directory_position`, which orders duplicates; `nil` when unknown.
    public let directoryPosition: Int?
    /// `false` when the server account is disabled (`cwd_user.active = 0`): still migrated, but flagged.
    public let isActive: Bool
    /// Which path the identity takes.
    public let kind: IdentityKind
    /// The address identities are matched on; `nil` when missing or blank.
    public let email: NormalizedEmail?
    /// Whether the address passes Atlassian's rule, computed once here because sorting and deciding
    /// look at it repeatedly.
    public let emailValidity: EmailValidity

    /// Creates an identity and normalises and checks its email once.
    public init(
        userKey: String, userName: String, displayName: String, rawEmail: String?,
        directoryId: Int64?, directoryPosition: Int?, isActive: Bool, kind: IdentityKind
    ) {
        self.userKey = userKey
        self.userName = userName
        self.displayName = displayName
        self.rawEmail = rawEmail
        self.directoryId = directoryId
        self.directoryPosition = directoryPosition
        self.isActive = isActive
        self.kind = kind
        let email = NormalizedEmail(rawEmail)
        self.email = email
        self.emailValidity = email?.validity ?? .missing
    }

    /// A user key that data references but the server no longer knows: only its key survives.
    public static func deleted(userKey: String, userName: String = "") -> ServerIdentity {
        ServerIdentity(
            userKey: userKey, userName: userName, displayName: "", rawEmail: nil,
            directoryId: nil, directoryPosition: nil, isActive: true, kind: .deleted)
    }
}
