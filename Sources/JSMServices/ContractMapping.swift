import JSMContracts
import JSMDomain

// Conversions between the wire contracts and the pure domain, in one place, so the producer,
// the workers and the aggregator cannot disagree on what a field means.

extension ServerIdentity {
    /// The identity a batch message describes, or nil when its kind is missing or unknown
    /// (such a message breaks the contract and is parked as `invalid-message`).
    public init?(_ message: JSMIdentity) {
        let kind: IdentityKind
        switch message.kind {
        case .customer: kind = .customer
        case .licensedUser: kind = .licensedUser
        case .deleted: kind = .deleted
        case .inactiveDirectory: kind = .inactiveDirectory
        case .unspecified, .UNRECOGNIZED: return nil
        }
        self.init(
            userKey: message.userKey, userName: message.userName, displayName: message.displayName,
            rawEmail: message.email.isEmpty ? nil : message.email,
            directoryId: message.directoryID == 0 ? nil : message.directoryID,
            directoryPosition: message.directoryID == 0 ? nil : Int(message.directoryPosition),
            isActive: !message.disabled, kind: kind)
    }
}

extension JSMIdentity {
    /// The wire form of a classified server identity.
    public init(_ identity: ServerIdentity) {
        self.init()
        userKey = identity.userKey
        userName = identity.userName
        displayName = identity.displayName
        email = identity.rawEmail ?? ""
        normalizedEmail = identity.email?.value ?? ""
        switch identity.kind {
        case .customer: kind = .customer
        case .licensedUser: kind = .licensedUser
        case .deleted: kind = .deleted
        case .inactiveDirectory: kind = .inactiveDirectory
        }
        directoryID = identity.directoryId ?? 0
        directoryPosition = Int64(identity.directoryPosition ?? 0)
        disabled = !identity.isActive
    }
}

extension JSMOutcome {
    /// The wire form of a domain outcome.
    public init(_ outcome: Outcome) {
        switch outcome {
        case .created: self = .created
        case .linked: self = .linked
        case .former: self = .former
        case .rejected: self = .rejected
        case .alreadyMigrated: self = .alreadyMigrated
        }
    }
}

extension JSMAccountType {
    /// The wire form of a cloud account type.
    public init(_ type: CloudAccountType?) {
        switch type {
        case .atlassian: self = .atlassian
        case .customer: self = .customer
        case nil: self = .unspecified
        }
    }
}

extension JSMIdentityResult {
    /// The result row of one decided identity; `account` is the account it ended up with, if any.
    public init(_ decided: IdentityDecision, account: ExistingCloudAccount?, primaryUserKey: String? = nil) {
        self.init()
        userKey = decided.identity.userKey
        outcome = JSMOutcome(decided.decision.outcome)
        cloudAccountID = account?.accountId ?? ""
        accountType = JSMAccountType(account?.type)
        var wireFlags: [JSMOutcomeFlag] = []
        let flags = decided.decision.flags
        if flags.contains(.disabled) { wireFlags.append(.disabled) }
        if flags.contains(.secondAccount) { wireFlags.append(.secondAccount) }
        if flags.contains(.merged) { wireFlags.append(.merged) }
        if flags.contains(.invalidEmail) { wireFlags.append(.invalidEmail) }
        self.flags = wireFlags
        switch decided.decision.reason {
        case .missingEmail: rejectionReason = .missingEmail
        case .malformedEmail: rejectionReason = .invalidEmail
        case .emailLocalPartTooLong: rejectionReason = .emailLocalPartTooLong
        case .duplicateEmailBlocked: rejectionReason = .duplicateEmail
        case nil: rejectionReason = .unspecified
        }
        if let reason = decided.decision.reason { detail = reason.message }
        self.primaryUserKey = primaryUserKey ?? ""
    }
}

extension JSMOutcomeTotals {
    /// Adds one outcome.
    public mutating func count(_ outcome: JSMOutcome) {
        switch outcome {
        case .created: created += 1
        case .linked: linked += 1
        case .former: former += 1
        case .rejected: rejected += 1
        case .alreadyMigrated: alreadyMigrated += 1
        case .unspecified, .UNRECOGNIZED: break
        }
    }

    /// Adds another set of totals.
    public mutating func add(_ other: JSMOutcomeTotals) {
        created += other.created
        linked += other.linked
        former += other.former
        rejected += other.rejected
        alreadyMigrated += other.alreadyMigrated
    }

    /// Identities accounted for: the right-hand side of the reconciliation invariant.
    public var accountedFor: UInt64 {
        UInt64(created) + UInt64(linked) + UInt64(former) + UInt64(rejected) + UInt64(alreadyMigrated)
    }
}
