/// A row of the source that does not fit Jira's model, found while classifying.
///
/// Real Jira databases carry decades of drift. Such rows must neither crash the producer nor make
/// an identity vanish: the identity is still classified (see each kind) and the anomaly is reported
/// with the user key so an operator can find the row.
public struct SourceAnomaly: Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// `cwd_user.email_address` is NULL; the identity is classified and the email policy decides.
        case missingEmail = "missing_email"
        /// A `cwd_user` row names a directory `cwd_directory` does not have; the row counts as inactive.
        case unknownDirectory = "unknown_directory"
        /// A membership names a user or group that does not exist (or sits in another directory);
        /// it is ignored.
        case danglingMembership = "dangling_membership"
        /// A group the user belongs to is nested in a cycle of groups; licensing is still computed,
        /// each group visited once.
        case membershipCycle = "membership_cycle"
        /// A `cwd_user` row has no `app_user` row; its lower-cased user name is used as the user key,
        /// as Jira did for users created before user keys existed.
        case missingAppUser = "missing_app_user"
    }

    /// What is wrong.
    public let kind: Kind
    /// The identity concerned; `nil` when the row concerns groups only.
    public let userKey: String?
    /// Which rows, named by table and id, so an operator can look them up.
    public let detail: String

    /// Records an anomaly.
    public init(kind: Kind, userKey: String?, detail: String) {
        self.kind = kind
        self.userKey = userKey
        self.detail = detail
    }

    /// One line for reports and logs.
    public var description: String {
        "\(kind.rawValue) (user key \(userKey ?? "-")): \(detail)"
    }
}
