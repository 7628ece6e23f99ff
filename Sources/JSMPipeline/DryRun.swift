import JSMCloud
import JSMDomain
import JSMLedger
import JSMSource
import Logging

/// A migration's scope computed straight from the source: every in-scope identity with its
/// category and the selected projects that reference it, spilled to scratch files (see
/// ``ScopeSpill``), and with groups the groups and memberships a run would record, in memory.
struct SourceScope {
    /// The in-scope identities, on disk until the dry run reads them back bucket by bucket.
    var spill: ScopeSpill
    /// With groups: the groups with at least one in-scope member, by lower-cased name, each with
    /// the name the producer records (the first the source yields), as the ledger's cut keeps them.
    var groups: [String: GroupCandidate] = [:]
    /// With groups: every (group, in-scope customer or licensed user) pair, as the ledger's cut keeps them.
    var memberships: Set<MembershipCandidate> = []

    /// Reads the scope of `options` over `projects` from `source`, with the same rules as the
    /// pipeline (JSMDomain's `ScopeSelection`), but without the ledger or the broker; with `groups`,
    /// also the groups and memberships the producer would record and the cut would keep. The
    /// scratch files are removed when this throws (cancelled included); otherwise the caller removes
    /// them.
    static func compute(
        source: JiraSource, options: ScopeOptions, projects: [SelectedProject], groups: Bool, buckets: Int
    ) async throws -> SourceScope {
        var scope = SourceScope(spill: try ScopeSpill(bucketCount: buckets))
        do {
            try await scope.read(source: source, options: options, projects: projects, groups: groups)
            try scope.spill.flushAll()
            // A source stream may end quietly when cancelled: a partial scope must not be planned.
            try Task.checkCancellation()
        } catch {
            scope.spill.removeFiles()
            throw error
        }
        return scope
    }

    private mutating func read(
        source: JiraSource, options: ScopeOptions, projects: [SelectedProject], groups: Bool
    ) async throws {
        let selection = try ScopeSelection(options: options, projects: projects)
        let classifier = try await source.loadClassifier()
        // Only the group candidates need to know, as the source is read, what is in scope already.
        var inScope = Set<String>()
        for project in projects {
            var keys = Set<String>()
            for try await reference in source.relatedIdentities(of: project) {
                try Task.checkCancellation()
                keys.insert(reference.userKey)
            }
            let ordered = keys.sorted()
            for slice in ordered.chunked(JiraSource.maximumKeysPerLookup) {
                try Task.checkCancellation()
                let chunk = Array(slice)
                for classified in try await source.classify(userKeys: chunk, classifier: classifier) {
                    let identity = classified.identity
                    guard let category = selection.categoryWhenReferenced(identity) else { continue }
                    try spill.append(identity, as: category, projectId: project.id)
                    if groups { inScope.insert(identity.userKey) }
                }
            }
        }
        let claimsAll = options.customers == .all || options.users == .all
        guard claimsAll || groups else { return }
        var reporters = Set<String>()
        if selection.needsRequestReporters {
            for try await key in source.requestReporters() { reporters.insert(key) }
        }
        var groupNames: [String: GroupCandidate] = [:]
        // Only identities with a directory user: the others are formers, which `all` never takes
        // and which have no groups.
        for try await classified in source.classifiedDirectoryUsers(classifier: classifier) {
            // An interrupted dry run stops here rather than at the end of a pass over millions.
            try Task.checkCancellation()
            let identity = classified.identity
            if claimsAll,
                let category = selection.categoryWithoutReference(
                    identity, isRequestReporter: reporters.contains(identity.userKey))
            {
                // A key a project claimed keeps that claim's category (see ``ScopeSpill``).
                try spill.append(identity, as: category, projectId: nil)
                if groups { inScope.insert(identity.userKey) }
            }
            // The producer's candidate rule; the cut keeps the pairs whose member is in scope.
            guard groups else { continue }
            let member = inScope.contains(identity.userKey)
            for group in classified.candidateGroups(classifier) {
                if groupNames[group.lowerName] == nil {
                    groupNames[group.lowerName] = GroupCandidate(
                        lowerName: group.lowerName, name: group.name, directoryId: group.directoryId)
                }
                if member {
                    memberships.insert(MembershipCandidate(lowerName: group.lowerName, userKey: identity.userKey))
                }
            }
        }
        for pair in memberships where self.groups[pair.lowerName] == nil {
            self.groups[pair.lowerName] = groupNames[pair.lowerName]
        }
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
    let scratchBuckets: Int
    let logger: Logger

    /// A dry run over the ledger (for earlier migrations' mappings), the source and the site.
    ///
    /// - Parameter scratchBuckets: files the scope is spread over (see ``defaultScratchBuckets``).
    public init(
        ledger: Ledger, source: JiraSource, site: any CloudSite, siteConcurrency: Int = 32,
        scratchBuckets: Int = MigrationDryRun.defaultScratchBuckets, logger: Logger = Logger(label: "jsm.dry-run")
    ) {
        self.ledger = ledger
        self.source = source
        self.site = site
        self.siteConcurrency = siteConcurrency
        self.scratchBuckets = scratchBuckets
        self.logger = logger
    }

    /// Files the scope is spread over, by a hash of the email: about 8,000 identities each for a
    /// 1M scope. The rules decide an email's identities together and nothing across emails, so
    /// planning the scope bucket by bucket gives the same outcomes as planning it whole, while only
    /// one bucket's identities, decisions and earlier mappings are in memory at a time. A 1M scope
    /// held and planned whole peaked at 1.35 GB of anonymous memory.
    public static let defaultScratchBuckets = 128

    /// The totals a real run of `definition` would report if nothing changes meanwhile.
    ///
    /// Cancelled, it throws `CancellationError` and removes its scratch files; it never returns
    /// totals of a part of the scope. It first removes the scratch directories of dry runs that
    /// ended without removing theirs (see ``ScopeSpill/removeAbandoned(in:)``).
    public func predict(_ definition: MigrationDefinition) async throws -> PredictedTotals {
        let abandoned = ScopeSpill.removeAbandoned()
        if !abandoned.isEmpty {
            logger.notice(
                "removed the scratch directories of dry runs that ended without removing them",
                metadata: ["dry_run.removed": "\(abandoned.map(\.path))"])
        }
        let scope = try await SourceScope.compute(
            source: source, options: definition.scope, projects: definition.projects, groups: definition.groups,
            buckets: scratchBuckets)
        defer { scope.spill.removeFiles() }
        // The group dry run needs the accounts of group members only, and only with memberships.
        let members =
            definition.groups && definition.groupMembership ? Set(scope.memberships.map(\.userKey)) : []
        var accounts: [String: PredictedAccount] = [:]
        var byCategory: [ScopeCategory: OutcomeTally] = [:]
        var byProject = [Int64: [ScopeCategory: OutcomeTally]](
            definition.projects.map { ($0.id, [:]) }, uniquingKeysWith: { first, _ in first })
        for bucket in 0..<scope.spill.bucketCount {
            try Task.checkCancellation()
            let spilled = try scope.spill.identities(inBucket: bucket)
            guard !spilled.isEmpty else { continue }
            var prior: [String: PriorMapping] = [:]
            for keys in spilled.map(\.identity.userKey).chunked(GroupDryRun.chunkSize) {
                prior.merge(try await ledger.priorMappings(siteId: definition.siteId, userKeys: Array(keys))) {
                    first, _ in first
                }
            }
            let plan = BatchPlan(
                identities: spilled.map(\.identity), priorMappings: prior, policies: definition.policies)
            var outcomes: [String: Outcome] = [:]
            for decided in plan.settled {
                let key = decided.identity.userKey
                outcomes[key] = decided.decision.outcome
                if members.contains(key) { accounts[key] = PredictedAccount.of(decided, prior: prior[key]) }
            }
            for (key, outcome, account) in try await predictAtSite(plan.pending) {
                outcomes[key] = outcome
                if members.contains(key) { accounts[key] = account }
            }
            for entry in spilled {
                let outcome = outcomes[entry.identity.userKey]
                byCategory[entry.category, default: OutcomeTally()].add(outcome: outcome, count: 1)
                for project in entry.projects {
                    byProject[project, default: [:]][entry.category, default: OutcomeTally()].add(
                        outcome: outcome, count: 1)
                }
            }
        }
        var groups: GroupPhaseTotals?
        if definition.groups {
            groups = try await GroupDryRun(
                ledger: ledger, site: site, siteId: definition.siteId, siteConcurrency: siteConcurrency
            ).predict(scope: scope, accounts: accounts, memberships: definition.groupMembership)
        }
        try Task.checkCancellation()
        return PredictedTotals(byCategory: byCategory, byProject: byProject, groups: groups)
    }

    /// Each pending email's outcomes and accounts from a search of the site, `siteConcurrency` at a time.
    private func predictAtSite(_ groups: [EmailGroupPlan]) async throws
        -> [(String, Outcome, PredictedAccount?)]
    {
        let site = self.site
        return try await groups.boundedConcurrentMap(limit: siteConcurrency) { group in
            let existing = try await site.accounts(withEmail: group.email)
            let decision = group.decidePrimary(existingAccounts: existing)
            let account = PredictedAccount.of(IdentityDecision(identity: group.primary, decision: decision), prior: nil)
            var result = [(group.primary.userKey, decision.outcome, account)]
            if decision.outcome == .created || decision.outcome == .linked {
                // The others follow the primary's account: linked, flagged merged.
                result += group.followers.map { ($0.userKey, Outcome.linked, account) }
            } else {
                result += group.followers.map { ($0.userKey, decision.outcome, nil) }
            }
            return result
        }.flatMap { $0 }
    }
}
