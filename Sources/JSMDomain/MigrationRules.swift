/// The decision table of the design (section 2) as pure functions: no I/O, the same answer for the
/// same inputs on every worker, which is what makes redelivered batches and retries safe.
public enum MigrationRules {
    /// Decides one identity on its own, given what the site already has for its email.
    ///
    /// Rows, in the order they are applied:
    /// 1. an earlier mapping on this site: `alreadyMigrated`, nothing to do (it wins over every other
    ///    row, so a migration never repeats or contradicts an earlier one);
    /// 2. deleted, or only in inactive directories: `former`, whatever its email;
    /// 3. missing or invalid email: `rejected` (`block`) or `former` flagged `invalidEmail`;
    /// 4. customer: link to the site's Atlassian account, else its customer account, else create a
    ///    customer account;
    /// 5. licensed user: link to the site's Atlassian account, else create one (flagged
    ///    `secondAccount` when the site has only a customer account for the email).
    ///
    /// A disabled server account is flagged `disabled` whatever the row. Duplicate emails are not
    /// this function's business: ``BatchPlan`` groups them and calls this for the primary only.
    ///
    /// - Parameter existingAccounts: the site's accounts with exactly this normalised email; when
    ///   the site holds several of one type (it should not), the smallest account id is used so
    ///   every worker picks the same one.
    public static func decide(
        _ identity: ServerIdentity, existingAccounts: [ExistingCloudAccount], priorMapping: PriorMapping?,
        policies: MigrationPolicies
    ) -> Decision {
        let flags: OutcomeFlags = identity.isActive ? [] : .disabled
        if priorMapping != nil {
            return Decision(outcome: .alreadyMigrated, flags: flags, action: .nothing)
        }
        guard identity.kind.needsCloudAccount else {
            return Decision(outcome: .former, flags: flags, action: .mapToFormer)
        }
        if let reason = DecisionReason(identity.emailValidity) {
            switch policies.invalidEmail {
            case .block:
                return Decision(outcome: .rejected, flags: flags, action: .nothing, reason: reason)
            case .former:
                return Decision(
                    outcome: .former, flags: flags.union(.invalidEmail), action: .mapToFormer, reason: reason)
            }
        }
        let atlassian = firstAccount(of: .atlassian, in: existingAccounts)
        let customer = firstAccount(of: .customer, in: existingAccounts)
        switch identity.kind {
        case .customer:
            // An Atlassian account for the email wins: the person keeps one account, which stays Atlassian.
            if let account = atlassian ?? customer {
                return Decision(outcome: .linked, flags: flags, action: .link(account))
            }
            return Decision(outcome: .created, flags: flags, action: .createCustomer)
        case .licensedUser:
            if let atlassian {
                return Decision(outcome: .linked, flags: flags, action: .link(atlassian))
            }
            let extra: OutcomeFlags = customer == nil ? [] : .secondAccount
            return Decision(outcome: .created, flags: flags.union(extra), action: .createAtlassianAccount)
        case .deleted, .inactiveDirectory:
            return Decision(outcome: .former, flags: flags, action: .mapToFormer)
        }
    }

    /// The decision for an identity that shares its email with a primary whose account is known:
    /// it links to that account, flagged `merged`, and the site is not called.
    public static func merge(_ identity: ServerIdentity, into primaryAccount: ExistingCloudAccount) -> Decision {
        let flags: OutcomeFlags = identity.isActive ? .merged : [.merged, .disabled]
        return Decision(outcome: .linked, flags: flags, action: .link(primaryAccount))
    }

    /// The decision for every identity of a duplicate group under `--duplicate-email block`.
    public static func blockDuplicate(_ identity: ServerIdentity) -> Decision {
        let flags: OutcomeFlags = identity.isActive ? [] : .disabled
        return Decision(outcome: .rejected, flags: flags, action: .nothing, reason: .duplicateEmailBlocked)
    }

    /// Whether `lhs` is a better primary than `rhs` for a shared email: licensed users before
    /// customers, then the lower directory position (unknown last), then the smaller user key.
    ///
    /// A strict total order on distinct user keys, so the primary never depends on the order in
    /// which the source returned rows or a batch arrived.
    public static func precedesAsPrimary(_ lhs: ServerIdentity, _ rhs: ServerIdentity) -> Bool {
        let lhsRank = primaryRank(lhs.kind)
        let rhsRank = primaryRank(rhs.kind)
        if lhsRank != rhsRank { return lhsRank < rhsRank }
        let lhsPosition = lhs.directoryPosition ?? Int.max
        let rhsPosition = rhs.directoryPosition ?? Int.max
        if lhsPosition != rhsPosition { return lhsPosition < rhsPosition }
        return lhs.userKey.utf8.lexicographicallyPrecedes(rhs.userKey.utf8)
    }

    /// The identity the others of a duplicate group follow; `nil` for an empty group.
    public static func primary(among identities: [ServerIdentity]) -> ServerIdentity? {
        identities.min(by: precedesAsPrimary)
    }

    private static func primaryRank(_ kind: IdentityKind) -> Int {
        switch kind {
        case .licensedUser: return 0
        case .customer: return 1
        case .deleted, .inactiveDirectory: return 2
        }
    }

    private static func firstAccount(
        of type: CloudAccountType, in accounts: [ExistingCloudAccount]
    ) -> ExistingCloudAccount? {
        var best: ExistingCloudAccount?
        for account in accounts where account.type == type {
            if let current = best, !account.accountId.utf8.lexicographicallyPrecedes(current.accountId.utf8) {
                continue
            }
            best = account
        }
        return best
    }
}
