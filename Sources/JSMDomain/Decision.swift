/// How one in-scope identity ended; the reconciliation invariant is
/// `in scope = created + linked + former + rejected + already_migrated`.
public enum Outcome: String, Sendable, Hashable, CaseIterable {
    /// A new cloud account was created for the identity.
    case created
    /// The identity was mapped to an account the site already had (or to its duplicate's primary).
    case linked
    /// No account: the identity maps to the single Former customer (or Former user) container.
    case former
    /// The identity was not migrated; the reason says why and an operator must act.
    case rejected
    /// An earlier migration to this site already mapped the identity: no cloud call.
    case alreadyMigrated = "already_migrated"
}

/// Facts about an outcome that need an operator's attention or explain it in the report.
public struct OutcomeFlags: OptionSet, Sendable, Hashable {
    /// The bits, stable so that they can be stored and sent.
    public let rawValue: UInt8

    /// Creates flags from stored bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The server account is disabled (`cwd_user.active = 0`); it is migrated anyway.
    public static let disabled = OutcomeFlags(rawValue: 1 << 0)
    /// A licensed user got an Atlassian account although the site already had a customer account
    /// for the same email: that email now has two accounts.
    public static let secondAccount = OutcomeFlags(rawValue: 1 << 1)
    /// The identity shares its email with another in-scope identity and was linked to its account.
    public static let merged = OutcomeFlags(rawValue: 1 << 2)
    /// The identity went to the Former container only because its email is missing or invalid.
    public static let invalidEmail = OutcomeFlags(rawValue: 1 << 3)

    /// Every flag with its report name, in a fixed order.
    public static let named: [(flag: OutcomeFlags, name: String)] = [
        (.disabled, "disabled"), (.secondAccount, "second_account"), (.merged, "merged"),
        (.invalidEmail, "invalid_email"),
    ]

    /// The report names of the flags that are set (`second_account`, ...), in a fixed order.
    public var names: [String] { Self.named.filter { contains($0.flag) }.map(\.name) }
}

/// Why an identity did not get an account of its own; set for `rejected`, and for `former` when
/// the invalid-email policy sent it there.
public enum DecisionReason: String, Sendable, Hashable, CaseIterable {
    /// The source has no email for the identity.
    case missingEmail = "missing_email"
    /// The email does not match Atlassian's pattern.
    case malformedEmail = "malformed_email"
    /// The email's local part is longer than 64 characters.
    case emailLocalPartTooLong = "email_local_part_too_long"
    /// Several in-scope identities share the email and `--duplicate-email block` is in force.
    case duplicateEmailBlocked = "duplicate_email_blocked"

    /// A sentence for the requires-attention report, saying what to fix.
    public var message: String {
        switch self {
        case .missingEmail: return "the server account has no email address"
        case .malformedEmail: return "the email address does not match Atlassian's email rule"
        case .emailLocalPartTooLong: return "the part of the email address before @ is longer than 64 characters"
        case .duplicateEmailBlocked:
            return "several migrated identities share this email address and --duplicate-email block is set"
        }
    }

    /// The reason an email of this validity cannot be used; `nil` when it is valid.
    public init?(_ validity: EmailValidity) {
        switch validity {
        case .valid: return nil
        case .missing: self = .missingEmail
        case .malformed: self = .malformedEmail
        case .localPartTooLong: self = .emailLocalPartTooLong
        }
    }
}

/// What a worker must do at the cloud site to carry out a decision.
public enum SiteAction: Sendable, Hashable {
    /// Create a customer account with the identity's email and display name, without notification.
    case createCustomer
    /// Create an Atlassian account with the identity's email and display name, without invitation.
    case createAtlassianAccount
    /// Make no account; record the mapping to this existing account.
    case link(ExistingCloudAccount)
    /// Make no account; record the mapping to the Former container.
    case mapToFormer
    /// Nothing at the site and no new mapping (rejected, or mapped by an earlier migration).
    case nothing
}

/// The rules' answer for one identity: its outcome, its flags and what the site must do.
public struct Decision: Sendable, Hashable {
    /// How the identity ends, once the action is carried out.
    public let outcome: Outcome
    /// Facts to report alongside.
    public let flags: OutcomeFlags
    /// What the worker does at the site.
    public let action: SiteAction
    /// Why the identity got no account of its own, when that is the case.
    public let reason: DecisionReason?

    /// Creates a decision; the rules are the only intended author.
    public init(outcome: Outcome, flags: OutcomeFlags, action: SiteAction, reason: DecisionReason? = nil) {
        self.outcome = outcome
        self.flags = flags
        self.action = action
        self.reason = reason
    }

    /// The type of account the action creates, when it creates one.
    public var accountTypeToCreate: CloudAccountType? {
        switch action {
        case .createCustomer: return .customer
        case .createAtlassianAccount: return .atlassian
        case .link, .mapToFormer, .nothing: return nil
        }
    }
}

/// A decision together with the identity it is for, as batch plans return them.
public struct IdentityDecision: Sendable, Hashable {
    /// The identity decided.
    public let identity: ServerIdentity
    /// What happens to it.
    public let decision: Decision

    /// Pairs an identity with its decision.
    public init(identity: ServerIdentity, decision: Decision) {
        self.identity = identity
        self.decision = decision
    }
}
