/// What to do with an identity whose email is missing or fails Atlassian's rule (`--invalid-email`).
public enum InvalidEmailPolicy: String, Sendable, Hashable, CaseIterable {
    /// Reject it and report it; the migration ends *finished with errors* (the default, because a
    /// silently anonymised person is worse than a visible error an operator can fix).
    case block
    /// Map it to the Former customer container and flag it.
    case former
}

/// What to do with several in-scope identities that share one normalised email (`--duplicate-email`).
public enum DuplicateEmailPolicy: String, Sendable, Hashable, CaseIterable {
    /// One primary follows the table; the others link to its account, flagged `merged` (the default).
    case merge
    /// Reject all of them, so an operator can untangle the people first.
    case block
}

/// The operator's choices that change a decision, carried in every batch so workers agree.
public struct MigrationPolicies: Sendable, Hashable {
    /// `--invalid-email`.
    public var invalidEmail: InvalidEmailPolicy
    /// `--duplicate-email`.
    public var duplicateEmail: DuplicateEmailPolicy

    /// The defaults are the documented ones: block invalid emails, merge duplicates.
    public init(invalidEmail: InvalidEmailPolicy = .block, duplicateEmail: DuplicateEmailPolicy = .merge) {
        self.invalidEmail = invalidEmail
        self.duplicateEmail = duplicateEmail
    }
}
