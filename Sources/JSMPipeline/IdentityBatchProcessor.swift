import JSMCloud
import JSMContracts
import JSMDomain
import JSMLedger
import JSMServices
import Logging

/// One identity's end, as the worker records it in the ledger and reports it in the reply.
struct SettledIdentity: Sendable {
    let decided: IdentityDecision
    let account: ExistingCloudAccount?
    let primaryUserKey: String?
    /// Set when the site refused the identity's account (a 4xx other than a conflict).
    let siteRefusal: String?

    var mapping: IdentityMapping {
        if siteRefusal != nil {
            return IdentityMapping(
                userKey: decided.identity.userKey, outcome: .rejected, flags: decided.decision.flags,
                reason: "site_refused")
        }
        return IdentityMapping(decided, account: account)
    }

    var result: JSMIdentityResult {
        var row = JSMIdentityResult(decided, account: account, primaryUserKey: primaryUserKey)
        if let siteRefusal {
            row.outcome = .rejected
            row.cloudAccountID = ""
            row.accountType = .unspecified
            row.rejectionReason = .siteRefused
            row.detail = siteRefusal
        }
        return row
    }
}

/// `MigrateIdentities` for one batch: answer a completed batch from the ledger; otherwise apply the
/// rules, call the site for what they leave open, and complete the batch in one ledger transaction.
struct IdentityBatchProcessor: Sendable {
    let ledger: Ledger
    let site: any CloudSite
    let workerId: String
    /// Email groups of one batch resolved at the site at once.
    let siteConcurrency: Int
    let logger: Logger

    /// The reply for `batch`; `replayed` when the ledger already had it (no site call was made).
    func process(_ batch: JSMIdentityBatch, attempt: UInt32) async throws -> JSMBatchResult {
        let migrationId = batch.header.migrationID
        let batchId = batch.header.batchID
        if let stored = try await ledger.completedResult(migrationId: migrationId, batchId: batchId) {
            return try .replay(stored, attempt: attempt, workerId: workerId)
        }
        var identities: [ServerIdentity] = []
        identities.reserveCapacity(batch.identities.count)
        for message in batch.identities {
            guard let identity = ServerIdentity(message), !message.userKey.isEmpty else {
                throw RPCEnvelope.Unusable(
                    reason: .invalidMessage,
                    detail:
                        "batch \(batchId): identity '\(LogRedaction.identifier(message.userKey))' has no user key "
                        + "or no known kind")
            }
            identities.append(identity)
        }
        let policies = try MigrationPolicies.required(by: batch.options, batchId: batchId)
        guard !batch.targetSiteID.isEmpty else {
            throw RPCEnvelope.Unusable(reason: .invalidMessage, detail: "batch \(batchId) names no target site")
        }
        let prior = try await ledger.priorMappings(siteId: batch.targetSiteID, userKeys: identities.map(\.userKey))
        let plan = BatchPlan(identities: identities, priorMappings: prior, policies: policies)
        var settled = plan.settled.map { decided in
            // A follower of an already-migrated primary links to the primary's account (in the action).
            var account = prior[decided.identity.userKey]?.account
            if case .link(let linked) = decided.decision.action { account = linked }
            return SettledIdentity(decided: decided, account: account, primaryUserKey: nil, siteRefusal: nil)
        }
        settled += try await resolveAtSite(plan.pending)
        let result = Self.result(for: batch, settled: settled, attempt: attempt, workerId: workerId)
        let completion = try await ledger.completeBatch(
            migrationId: migrationId, batchId: batchId, mappings: settled.map(\.mapping),
            result: try result.serializedBytes())
        return try result.settled(by: completion)
    }

    /// Resolves every pending email group at the site, `siteConcurrency` groups at a time.
    private func resolveAtSite(_ groups: [EmailGroupPlan]) async throws -> [SettledIdentity] {
        try await groups.boundedConcurrentMap(limit: siteConcurrency) { group in try await resolve(group) }
            .flatMap { $0 }
    }

    /// Carries out the primary's decision at the site, then links the group's others to its account.
    private func resolve(_ group: EmailGroupPlan) async throws -> [SettledIdentity] {
        let primary = group.primary
        var decision: Decision
        var account: ExistingCloudAccount?
        do {
            switch primary.kind {
            case .customer:
                // One call: the site links instead of creating when the email already has an account.
                switch try await site.createCustomer(email: group.email, displayName: primary.displayName) {
                case .created(let created):
                    decision = group.decidePrimary(existingAccounts: [])
                    account = created
                case .linked(let existing):
                    decision = group.decidePrimary(existingAccounts: [existing])
                    account = existing
                }
            case .licensedUser, .deleted, .inactiveDirectory:
                let existing = try await site.accounts(withEmail: group.email)
                decision = group.decidePrimary(existingAccounts: existing)
                switch decision.action {
                case .link(let linked):
                    account = linked
                case .createAtlassianAccount, .createCustomer:
                    let provisioning =
                        decision.accountTypeToCreate == .customer
                        ? try await site.createCustomer(email: group.email, displayName: primary.displayName)
                        : try await site.createAtlassianAccount(
                            email: group.email, displayName: primary.displayName, afterSearchFound: existing)
                    switch provisioning {
                    case .created(let created):
                        account = created
                    case .linked(let raced):
                        // Someone created it between the search and the creation: link to it.
                        decision = group.decidePrimary(existingAccounts: existing + [raced])
                        account = raced
                    }
                case .mapToFormer, .nothing:
                    account = nil
                }
            }
        } catch let error as CloudSiteError where error.refusesTheItem {
            // The site refuses this person (e.g. an address it considers invalid): rejected and
            // reported, the rest of the batch goes on. Other errors fail the batch (retried or parked).
            logger.warning(
                "site refused an identity",
                metadata: [
                    "user_key": "\(LogRedaction.identifier(primary.userKey))", "detail": "\(error.refusalDetail)",
                ])
            let refusal = error.refusalDetail
            let members = [primary] + group.followers
            return members.map { member in
                SettledIdentity(
                    decided: IdentityDecision(identity: member, decision: group.decidePrimary(existingAccounts: [])),
                    account: nil, primaryUserKey: member == primary ? nil : primary.userKey, siteRefusal: refusal)
            }
        }
        var settled = [
            SettledIdentity(
                decided: IdentityDecision(identity: primary, decision: decision), account: account,
                primaryUserKey: nil, siteRefusal: nil)
        ]
        if let account {
            for follower in group.decideFollowers(primaryAccount: account) {
                settled.append(
                    SettledIdentity(
                        decided: follower, account: account, primaryUserKey: primary.userKey, siteRefusal: nil))
            }
        }
        return settled
    }

    /// The `BatchResult` for the settled identities, with totals per category.
    static func result(
        for batch: JSMIdentityBatch, settled: [SettledIdentity], attempt: UInt32, workerId: String
    ) -> JSMBatchResult {
        var result = JSMBatchResult(header: batch.header, attempt: attempt, workerId: workerId)
        // Built apart and assigned once: appending to the generated repeated field copies the
        // whole array each time (get/set only), quadratic per batch (helper "transport": about
        // 9 us of worker CPU per identity). In the order the identities were settled: the ledger
        // does not need them sorted, and sorting 500 structs of strings showed in profiles.
        var rows: [JSMIdentityResult] = []
        rows.reserveCapacity(settled.count)
        for identity in settled {
            let row = identity.result
            rows.append(row)
            result.totals.count(row.outcome)
            switch identity.decided.identity.kind {
            case .customer: result.customers.count(row.outcome)
            case .licensedUser: result.licensedUsers.count(row.outcome)
            case .deleted, .inactiveDirectory: result.formers.count(row.outcome)
            }
        }
        result.results = rows
        return result
    }
}

extension MigrationPolicies {
    /// The policies of an identity batch, which a worker acts on for every identity. proto-docs
    /// requires both to be set, and an older worker meeting a value from a newer producer must
    /// park the batch (`invalid-message`) rather than guess: guessing `block` for an unknown
    /// policy would reject identities the operator meant to migrate, and commit that to the ledger.
    static func required(by options: JSMMigrationOptions, batchId: String) throws(RPCEnvelope.Unusable)
        -> MigrationPolicies
    {
        let invalidEmail: InvalidEmailPolicy
        switch options.invalidEmail {
        case .block: invalidEmail = .block
        case .former: invalidEmail = .former
        case .unspecified, .UNRECOGNIZED:
            throw RPCEnvelope.Unusable(
                reason: .invalidMessage,
                detail:
                    "batch \(batchId): invalid_email policy \(options.invalidEmail) is unset or unknown to this worker")
        }
        let duplicateEmail: DuplicateEmailPolicy
        switch options.duplicateEmail {
        case .merge: duplicateEmail = .merge
        case .block: duplicateEmail = .block
        case .unspecified, .UNRECOGNIZED:
            throw RPCEnvelope.Unusable(
                reason: .invalidMessage,
                detail:
                    "batch \(batchId): duplicate_email policy \(options.duplicateEmail) is unset or unknown to this worker"
            )
        }
        return MigrationPolicies(invalidEmail: invalidEmail, duplicateEmail: duplicateEmail)
    }
}
