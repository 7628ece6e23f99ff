import JSMContracts
import JSMDomain

/// Applies the rules to a batch as if the cloud site had no account for any of its emails.
///
/// This is what a dry run predicts: the real worker does the same with the site's answers.
/// Planned account ids are stable (derived from the email and account type), so a rerun
/// predicts the same ids.
public enum PlannedBatch {
    /// The result the batch would have against an empty site.
    public static func result(for batch: JSMIdentityBatch, workerID: String, attempt: UInt32) throws(RPCEnvelope
        .Unusable)
        -> JSMBatchResult
    {
        var identities: [ServerIdentity] = []
        identities.reserveCapacity(batch.identities.count)
        for message in batch.identities {
            guard let identity = ServerIdentity(message) else {
                throw RPCEnvelope.Unusable(
                    reason: .invalidMessage, detail: "identity '\(message.userKey)' has no known kind")
            }
            identities.append(identity)
        }
        let plan = BatchPlan(identities: identities, priorMappings: [:], policies: MigrationPolicies(batch.options))
        var result = JSMBatchResult()
        result.header = batch.header
        result.attempt = attempt
        result.workerID = workerID
        func record(_ row: JSMIdentityResult, kind: IdentityKind) {
            result.results.append(row)
            result.totals.count(row.outcome)
            switch kind {
            case .customer: result.customers.count(row.outcome)
            case .licensedUser: result.licensedUsers.count(row.outcome)
            case .deleted, .inactiveDirectory: result.formers.count(row.outcome)
            }
        }
        for decided in plan.settled {
            record(JSMIdentityResult(decided, account: nil), kind: decided.identity.kind)
        }
        for group in plan.pending {
            let decision = group.decidePrimary(existingAccounts: [])
            let account = decision.accountTypeToCreate.map {
                ExistingCloudAccount(accountId: plannedAccountId(group.email, $0), type: $0)
            }
            record(
                JSMIdentityResult(IdentityDecision(identity: group.primary, decision: decision), account: account),
                kind: group.primary.kind)
            guard let account else { continue }
            for follower in group.decideFollowers(primaryAccount: account) {
                record(
                    JSMIdentityResult(follower, account: account, primaryUserKey: group.primary.userKey),
                    kind: follower.identity.kind)
            }
        }
        return result
    }

    /// A stable placeholder account id: FNV-1a of the type and the normalised email.
    static func plannedAccountId(_ email: NormalizedEmail, _ type: CloudAccountType) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in type.rawValue.utf8 + [0] + email.value.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return "planned-" + String(hash, radix: 16)
    }
}
