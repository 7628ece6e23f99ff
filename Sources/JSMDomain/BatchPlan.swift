/// The rules applied to one batch of in-scope identities, split into what needs no site call and
/// what does.
///
/// Identities that share a normalised email form one group (batches never split an email, so every
/// worker sees the whole group). Under `--duplicate-email merge` the group's primary follows the
/// table and the others link to the primary's account; that account is only known after the site
/// call, so a worker:
/// 1. records ``settled`` as they are;
/// 2. for each ``EmailGroupPlan`` in ``pending``: looks the email up at the site, calls
///    ``EmailGroupPlan/decidePrimary(existingAccounts:)``, carries out its action, and with the
///    resulting account calls ``EmailGroupPlan/decideFollowers(primaryAccount:)``.
public struct BatchPlan: Sendable {
    /// Decisions that need nothing from the site: formers, invalid emails, identities an earlier
    /// migration mapped, blocked duplicates, and the followers of an already-migrated primary.
    public let settled: [IdentityDecision]
    /// One plan per email whose primary needs the site, in the order the emails first appear.
    public let pending: [EmailGroupPlan]

    /// Plans a batch. An identity that appears twice (same user key) is planned once.
    ///
    /// - Parameter priorMappings: earlier mappings on this site, by user key.
    public init(
        identities: [ServerIdentity], priorMappings: [String: PriorMapping], policies: MigrationPolicies
    ) {
        var settled: [IdentityDecision] = []
        var groups: [NormalizedEmail: [ServerIdentity]] = [:]
        var emailOrder: [NormalizedEmail] = []
        var seenKeys = Set<String>(minimumCapacity: identities.count)
        for identity in identities where seenKeys.insert(identity.userKey).inserted {
            guard identity.kind.needsCloudAccount, identity.emailValidity == .valid, let email = identity.email
            else {
                // Formers and unusable emails are decided alone: they take no account to share.
                let decision = MigrationRules.decide(
                    identity, existingAccounts: [], priorMapping: priorMappings[identity.userKey],
                    policies: policies)
                settled.append(IdentityDecision(identity: identity, decision: decision))
                continue
            }
            if groups[email] == nil { emailOrder.append(email) }
            groups[email, default: []].append(identity)
        }
        // An identity an earlier migration mapped keeps that mapping, whatever its group does.
        func alreadyMigrated(_ identity: ServerIdentity) -> IdentityDecision? {
            guard let prior = priorMappings[identity.userKey] else { return nil }
            let decision = MigrationRules.decide(
                identity, existingAccounts: [], priorMapping: prior, policies: policies)
            return IdentityDecision(identity: identity, decision: decision)
        }
        var pending: [EmailGroupPlan] = []
        for email in emailOrder {
            let members = (groups[email] ?? []).sorted(by: MigrationRules.precedesAsPrimary)
            guard let primary = members.first else { continue }
            let followers = members.dropFirst()
            if members.count > 1, policies.duplicateEmail == .block {
                for member in members {
                    settled.append(
                        alreadyMigrated(member)
                            ?? IdentityDecision(identity: member, decision: MigrationRules.blockDuplicate(member)))
                }
                continue
            }
            var waiting: [ServerIdentity] = []
            for follower in followers {
                if let decided = alreadyMigrated(follower) {
                    settled.append(decided)
                } else {
                    waiting.append(follower)
                }
            }
            if let prior = priorMappings[primary.userKey], let primaryDecision = alreadyMigrated(primary) {
                // An earlier migration settled the primary's account: the others follow it without the site.
                settled.append(primaryDecision)
                for follower in waiting {
                    let decision = MigrationRules.merge(follower, into: prior.account)
                    settled.append(IdentityDecision(identity: follower, decision: decision))
                }
            } else {
                pending.append(EmailGroupPlan(email: email, primary: primary, followers: waiting, policies: policies))
            }
        }
        self.settled = settled
        self.pending = pending
    }

    /// How many identities the plan covers; equal to the number of distinct user keys given.
    public var identityCount: Int {
        settled.count + pending.reduce(0) { $0 + 1 + $1.followers.count }
    }
}

/// The identities of one email that wait for the site: a primary, and under `merge` the others
/// that will link to the primary's account.
public struct EmailGroupPlan: Sendable, Hashable {
    /// The shared normalised email.
    public let email: NormalizedEmail
    /// The identity that follows the table (see ``MigrationRules/precedesAsPrimary(_:_:)``).
    public let primary: ServerIdentity
    /// Identities that link to the primary's account, flagged `merged`; empty when the email is unique.
    public let followers: [ServerIdentity]
    /// The policies in force.
    public let policies: MigrationPolicies

    /// The primary's decision, given what the site already has for the email.
    public func decidePrimary(existingAccounts: [ExistingCloudAccount]) -> Decision {
        MigrationRules.decide(primary, existingAccounts: existingAccounts, priorMapping: nil, policies: policies)
    }

    /// The followers' decisions once the primary's account exists (created or linked).
    public func decideFollowers(primaryAccount: ExistingCloudAccount) -> [IdentityDecision] {
        followers.map { IdentityDecision(identity: $0, decision: MigrationRules.merge($0, into: primaryAccount)) }
    }
}
