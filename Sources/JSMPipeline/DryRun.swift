import JSMCloud
import JSMDomain
import JSMLedger
import JSMSource
import Logging

/// A migration's scope computed straight from the source, in memory: every in-scope identity with
/// its category, and the in-scope user keys each selected project references.
public struct SourceScope: Sendable {
    /// In-scope identities by user key.
    public internal(set) var identities: [String: ServerIdentity] = [:]
    /// Each in-scope user key's category.
    public internal(set) var categories: [String: ScopeCategory] = [:]
    /// In-scope user keys per selected project.
    public internal(set) var projectReferences: [Int64: Set<String>] = [:]
    /// With groups: the groups with at least one in-scope member, by lower-cased name, each with
    /// the name the producer records (the first the source yields), as the ledger's cut keeps them.
    public internal(set) var groups: [String: GroupCandidate] = [:]
    /// With groups: every (group, in-scope customer or licensed user) pair, as the ledger's cut keeps them.
    public internal(set) var memberships: Set<MembershipCandidate> = []

    /// Reads the scope of `options` over `projects` from `source`, with the same rules as the
    /// pipeline (JSMDomain's `ScopeSelection`), but without the ledger or the broker; with `groups`,
    /// also the groups and memberships the producer would record and the cut would keep.
    public static func compute(
        source: JiraSource, options: ScopeOptions, projects: [SelectedProject], groups: Bool = false
    ) async throws -> SourceScope {
        let selection = try ScopeSelection(options: options, projects: projects)
        let classifier = try await source.loadClassifier()
        var scope = SourceScope()
        for project in projects {
            var keys = Set<String>()
            for try await reference in source.relatedIdentities(of: project) { keys.insert(reference.userKey) }
            let ordered = keys.sorted()
            var inScope = Set<String>()
            for slice in ordered.chunked(JiraSource.maximumKeysPerLookup) {
                let chunk = Array(slice)
                for classified in try await source.classify(userKeys: chunk, classifier: classifier) {
                    let identity = classified.identity
                    guard let category = selection.categoryWhenReferenced(identity) else { continue }
                    inScope.insert(identity.userKey)
                    scope.insert(identity, as: category)
                }
            }
            scope.projectReferences[project.id] = inScope
        }
        let claimsAll = options.customers == .all || options.users == .all
        guard claimsAll || groups else { return scope }
        var reporters = Set<String>()
        if claimsAll {
            for try await key in source.requestReporters() { reporters.insert(key) }
        }
        var groupNames: [String: GroupCandidate] = [:]
        for try await classified in source.classifiedIdentities(classifier: classifier) {
            let identity = classified.identity
            if claimsAll,
                let category = selection.categoryWithoutReference(
                    identity, isRequestReporter: reporters.contains(identity.userKey))
            {
                scope.insert(identity, as: category)
            }
            // The producer's candidate rule; the cut keeps the pairs whose member is in scope.
            guard groups else { continue }
            let inScope = scope.identities[identity.userKey] != nil
            for group in classified.candidateGroups(classifier) {
                if groupNames[group.lowerName] == nil {
                    groupNames[group.lowerName] = GroupCandidate(
                        lowerName: group.lowerName, name: group.name, directoryId: group.directoryId)
                }
                if inScope {
                    scope.memberships.insert(MembershipCandidate(lowerName: group.lowerName, userKey: identity.userKey))
                }
            }
        }
        for pair in scope.memberships where scope.groups[pair.lowerName] == nil {
            scope.groups[pair.lowerName] = groupNames[pair.lowerName]
        }
        return scope
    }

    private mutating func insert(_ identity: ServerIdentity, as category: ScopeCategory) {
        guard identities[identity.userKey] == nil else { return }
        identities[identity.userKey] = identity
        categories[identity.userKey] = category
    }

    /// In-scope identities per category.
    public var counts: ScopeCounts {
        var counts = ScopeCounts()
        for category in categories.values {
            switch category {
            case .customer: counts.customers += 1
            case .licensedUser: counts.licensedUsers += 1
            case .former: counts.formers += 1
            }
        }
        return counts
    }
}

/// The totals a migration will report, predicted without changing anything: per category and
/// per project, in the ledger's own shape.
public struct PredictedTotals: Sendable, Hashable {
    /// Per category.
    public let byCategory: [ScopeCategory: OutcomeTally]
    /// Per selected project, per category.
    public let byProject: [Int64: [ScopeCategory: OutcomeTally]]
    /// With `--groups`: groups and (with `--group-membership`; otherwise none in scope) memberships,
    /// in the shape the ledger's ``Ledger/groupTotals(migrationId:)`` reports after the run.
    public let groups: GroupPhaseTotals?
}

/// `start --dry-run`: classifies every identity of the scope and applies the rules against what
/// the ledger and the site hold now, with read-only site lookups; it records and publishes nothing.
/// With `--groups` it also predicts the group and membership totals (see ``GroupDryRun``).
public struct MigrationDryRun: Sendable {
    let ledger: Ledger
    let source: JiraSource
    let site: any CloudSite
    let siteConcurrency: Int
    let planChunkSize: Int

    /// A dry run over the ledger (for earlier migrations' mappings), the source and the site.
    ///
    /// - Parameter planChunkSize: identities planned together (see ``defaultPlanChunkSize``).
    public init(
        ledger: Ledger, source: JiraSource, site: any CloudSite, siteConcurrency: Int = 32,
        planChunkSize: Int = MigrationDryRun.defaultPlanChunkSize
    ) {
        self.ledger = ledger
        self.source = source
        self.site = site
        self.siteConcurrency = siteConcurrency
        self.planChunkSize = planChunkSize
    }

    /// Identities planned together: about this many, never splitting an email. The rules decide an
    /// email's identities together and nothing across emails, so planning the scope piece by piece
    /// gives the same outcomes as planning it whole, while the plan's own copies of the identities,
    /// their decisions and their earlier mappings are held for one piece at a time (a 1M scope
    /// planned whole peaked at 1.35 GB of anonymous memory, 0.72 GB in pieces).
    public static let defaultPlanChunkSize = 50_000

    /// The totals a real run of `definition` would report if nothing changes meanwhile.
    public func predict(_ definition: MigrationDefinition) async throws -> PredictedTotals {
        let scope = try await SourceScope.compute(
            source: source, options: definition.scope, projects: definition.projects, groups: definition.groups)
        // The group dry run needs the accounts of group members only, and only with memberships.
        let members =
            definition.groups && definition.groupMembership ? Set(scope.memberships.map(\.userKey)) : []
        var outcomes: [String: Outcome] = [:]
        outcomes.reserveCapacity(scope.identities.count)
        var accounts: [String: PredictedAccount] = [:]
        for chunk in Self.emailChunks(of: scope.identities.values, size: planChunkSize) {
            let identities = chunk.compactMap { scope.identities[$0] }
            var prior: [String: PriorMapping] = [:]
            for keys in chunk.chunked(GroupDryRun.chunkSize) {
                prior.merge(try await ledger.priorMappings(siteId: definition.siteId, userKeys: Array(keys))) {
                    first, _ in first
                }
            }
            let plan = BatchPlan(identities: identities, priorMappings: prior, policies: definition.policies)
            for decided in plan.settled {
                let key = decided.identity.userKey
                outcomes[key] = decided.decision.outcome
                if members.contains(key) { accounts[key] = PredictedAccount.of(decided, prior: prior[key]) }
            }
            for (key, outcome, account) in try await predictAtSite(plan.pending) {
                outcomes[key] = outcome
                if members.contains(key) { accounts[key] = account }
            }
        }
        var byCategory: [ScopeCategory: OutcomeTally] = [:]
        for (key, category) in scope.categories {
            byCategory[category, default: OutcomeTally()].add(outcome: outcomes[key], count: 1)
        }
        var byProject: [Int64: [ScopeCategory: OutcomeTally]] = [:]
        for (project, references) in scope.projectReferences {
            var tallies: [ScopeCategory: OutcomeTally] = [:]
            for key in references {
                guard let category = scope.categories[key] else { continue }
                tallies[category, default: OutcomeTally()].add(outcome: outcomes[key], count: 1)
            }
            byProject[project] = tallies
        }
        var groups: GroupPhaseTotals?
        if definition.groups {
            groups = try await GroupDryRun(
                ledger: ledger, site: site, siteId: definition.siteId, siteConcurrency: siteConcurrency
            ).predict(scope: scope, accounts: accounts, memberships: definition.groupMembership)
        }
        return PredictedTotals(byCategory: byCategory, byProject: byProject, groups: groups)
    }

    /// The identities' user keys in pieces of about `size`, every identity sharing a normalised
    /// email in the same piece: a piece is a bucket of a hash of the email (of the user key when
    /// there is none: the rules decide such an identity alone). Each piece is in user-key order.
    static func emailChunks(of identities: some Collection<ServerIdentity>, size: Int) -> [[String]] {
        let count = max(1, (identities.count + size - 1) / max(1, size))
        var chunks = [[String]](repeating: [], count: count)
        for identity in identities {
            let bucket = Int(stableHash(identity.email?.value ?? identity.userKey) % UInt64(count))
            chunks[bucket].append(identity.userKey)
        }
        return chunks.filter { !$0.isEmpty }.map { $0.sorted() }
    }

    /// FNV-1a over the UTF-8 bytes: the same buckets in every process, unlike `Hasher`.
    static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// Each pending email's outcomes and accounts from a search of the site, `siteConcurrency` at a time.
    private func predictAtSite(_ groups: [EmailGroupPlan]) async throws
        -> [(String, Outcome, PredictedAccount?)]
    {
        var outcomes: [(String, Outcome, PredictedAccount?)] = []
        try await withThrowingTaskGroup(of: [(String, Outcome, PredictedAccount?)].self) { tasks in
            var next = 0
            func startNext() {
                guard next < groups.count else { return }
                let group = groups[next]
                next += 1
                tasks.addTask {
                    let existing = try await site.accounts(withEmail: group.email)
                    let decision = group.decidePrimary(existingAccounts: existing)
                    let account = PredictedAccount.of(
                        IdentityDecision(identity: group.primary, decision: decision), prior: nil)
                    var result = [(group.primary.userKey, decision.outcome, account)]
                    if decision.outcome == .created || decision.outcome == .linked {
                        // The others follow the primary's account: linked, flagged merged.
                        result += group.followers.map { ($0.userKey, Outcome.linked, account) }
                    } else {
                        result += group.followers.map { ($0.userKey, decision.outcome, nil) }
                    }
                    return result
                }
            }
            for _ in 0..<max(1, siteConcurrency) { startNext() }
            while let done = try await tasks.next() {
                outcomes += done
                startNext()
            }
        }
        return outcomes
    }
}
